// Where probers get their bytes. Probers never do I/O themselves: they ask a
// Source, which is a device or image file (FileSource, the one reader that
// touches devices) or memory (MemorySource, for unit tests).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "probe/bytes.h"

namespace diskgate::probe {

// A read failed (EIO, ...). Aborts probing of the device, unlike a mismatch.
struct IoError : std::runtime_error {
  IoError(const std::string& what, int error_number)
      : std::runtime_error(what), error_number(error_number) {}
  int error_number;
};

class Source {
 public:
  virtual ~Source() = default;
  virtual std::uint64_t size() const = 0;
  // The bytes [offset, offset + length), clipped at size(): a short or empty
  // span means the device ends there. The span stays valid for the Source's
  // lifetime. Throws IoError when the device fails.
  virtual Bytes read(std::uint64_t offset, std::size_t length) = 0;
};

// How much of a directory (FAT root directory, exFAT cluster) to read next:
// piece number `index` (from 0) at device offset `at`, with `left` bytes still
// to scan. The first piece ends at a 4 KiB boundary, the block FileSource
// reads anyway, since the label or the end mark is nearly always among the
// first entries; later pieces are 4, 8, 16 ... up to 64 KiB, so that a long
// directory costs few calls. At most 4 KiB in all is read as one piece.
std::uint64_t directory_piece(std::uint64_t at, unsigned index, std::uint64_t left);

// An in-memory device; counts the reads it served and the bytes it handed
// out, as tests want to know.
class MemorySource : public Source {
 public:
  explicit MemorySource(std::vector<std::byte> bytes) : bytes_(std::move(bytes)) {}
  std::uint64_t size() const override { return bytes_.size(); }
  Bytes read(std::uint64_t offset, std::size_t length) override;
  int reads() const { return reads_; }
  std::uint64_t bytes_read() const { return bytes_read_; }

 private:
  std::vector<std::byte> bytes_;
  int reads_ = 0;
  std::uint64_t bytes_read_ = 0;
};

// Reads a block device or image file with pread, caching what it read so that
// probers asking for overlapping ranges cost one system call. Each read is
// widened to whole 4 KiB blocks (8 KiB at the head of the device), and only
// the blocks not cached yet are read from the device.
class FileSource : public Source {
 public:
  // Opens `path` read-only. Throws IoError naming the path on failure.
  explicit FileSource(const std::string& path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  std::uint64_t size() const override { return size_; }
  Bytes read(std::uint64_t offset, std::size_t length) override;
  // Major/minor of a block device; 0/0 for a regular file.
  bool is_block_device() const { return is_block_; }
  unsigned major() const { return major_; }
  unsigned minor() const { return minor_; }
  int read_calls() const { return read_calls_; }
  std::uint64_t bytes_read() const { return bytes_read_; }

 private:
  struct Chunk {
    std::uint64_t offset;
    std::vector<std::byte> data;
  };
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  bool is_block_ = false;
  unsigned major_ = 0, minor_ = 0;
  std::deque<Chunk> chunks_;  // deque: spans into chunks stay valid
  int read_calls_ = 0;
  std::uint64_t bytes_read_ = 0;
};

}  // namespace diskgate::probe
