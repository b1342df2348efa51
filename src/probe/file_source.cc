// The one place that reads devices: pread on a read-only descriptor.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include <fmt/format.h>

#include "probe/source.h"

namespace diskgate::probe {

namespace {
constexpr std::uint64_t block = 4096;

IoError errno_error(const std::string& path, const char* what, int error_number) {
  return IoError(fmt::format("{}: {}: {}", path, what, std::generic_category().message(error_number)), error_number);
}
}  // namespace

std::uint64_t directory_piece(std::uint64_t at, unsigned index, std::uint64_t left) {
  constexpr std::uint64_t max_piece = 64 * 1024;
  std::uint64_t piece;
  if (index == 0)
    piece = left <= block ? left : block - at % block;
  else
    piece = std::min(max_piece, block << std::min(index - 1, 4u));
  return std::min(piece, left);
}

Bytes MemorySource::read(std::uint64_t offset, std::size_t length) {
  ++reads_;
  if (offset >= bytes_.size()) return {};
  std::size_t available = bytes_.size() - static_cast<std::size_t>(offset);
  Bytes span = Bytes(bytes_).subspan(static_cast<std::size_t>(offset), std::min(length, available));
  bytes_read_ += span.size();
  return span;
}

FileSource::FileSource(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) throw errno_error(path, "cannot open", errno);
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    int e = errno;
    ::close(fd_);
    throw errno_error(path, "cannot stat", e);
  }
  if (S_ISBLK(st.st_mode)) {
    is_block_ = true;
    major_ = ::major(st.st_rdev);
    minor_ = ::minor(st.st_rdev);
    if (::ioctl(fd_, BLKGETSIZE64, &size_) != 0) {
      int e = errno;
      ::close(fd_);
      throw errno_error(path, "cannot get size", e);
    }
  } else if (S_ISREG(st.st_mode)) {
    size_ = static_cast<std::uint64_t>(st.st_size);
  } else {
    ::close(fd_);
    throw IoError(fmt::format("{}: {}", path,
                              S_ISDIR(st.st_mode) ? "is a directory, not a device or image"
                                                  : "is not a block device or regular file"),
                  S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
  }
  // Probers read a few scattered blocks: readahead would only pull in
  // pages nobody asked for (up to 128 KiB a read on a cold cache).
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_RANDOM);
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

Bytes FileSource::read(std::uint64_t offset, std::size_t length) {
  if (offset >= size_ || length == 0) return {};
  std::uint64_t end = std::min<std::uint64_t>(size_, offset + length);
  for (const Chunk& chunk : chunks_) {
    if (chunk.offset <= offset && chunk.offset + chunk.data.size() >= end)
      return Bytes(chunk.data).subspan(offset - chunk.offset, end - offset);
  }
  // Whole blocks, so that neighbouring fields of one structure cost one call.
  std::uint64_t first = offset / block * block;
  std::uint64_t last = std::min(size_, (end + block - 1) / block * block);
  // The device's head is read as 8 KiB at once: exFAT's boot checksum covers
  // 12 sectors, and GPT's header and first entries live there too.
  if (first == 0) last = std::min(size_, std::max<std::uint64_t>(last, 2 * block));
  // Spans must be contiguous, so the new chunk holds the whole range, but
  // what earlier chunks hold is copied rather than read again (a GPT entry
  // array starting inside the head, a directory read on past a piece).
  Chunk chunk{first, std::vector<std::byte>(last - first)};
  std::uint64_t at = first;
  while (at < last) {
    const Chunk* cached = nullptr;
    std::uint64_t gap_end = last;  // where the next cached chunk starts
    for (const Chunk& c : chunks_) {
      std::uint64_t c_end = c.offset + c.data.size();
      if (c.offset <= at && at < c_end && (!cached || c_end > cached->offset + cached->data.size())) cached = &c;
      if (c.offset > at && c.offset < gap_end) gap_end = c.offset;
    }
    if (cached) {
      std::uint64_t copy_end = std::min(last, cached->offset + cached->data.size());
      std::memcpy(chunk.data.data() + (at - first), cached->data.data() + (at - cached->offset), copy_end - at);
      at = copy_end;
      continue;
    }
    std::uint64_t filled = at;
    while (filled < gap_end) {
      ssize_t n = ::pread(fd_, chunk.data.data() + (filled - first), gap_end - filled, static_cast<off_t>(filled));
      ++read_calls_;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int error = errno;  // before fmt::format, which may change it
        throw errno_error(path_, fmt::format("read at offset {} failed", filled).c_str(), error);
      }
      if (n == 0) break;  // the file shrank under us
      filled += static_cast<std::uint64_t>(n);
      bytes_read_ += static_cast<std::uint64_t>(n);
    }
    if (filled < gap_end) {  // nothing after a hole can join the chunk
      last = filled;
      break;
    }
    at = filled;
  }
  chunk.data.resize(last - first);
  chunks_.push_back(std::move(chunk));
  const Chunk& stored = chunks_.back();
  if (stored.offset + stored.data.size() <= offset) return {};
  std::uint64_t stored_end = std::min<std::uint64_t>(end, stored.offset + stored.data.size());
  return Bytes(stored.data).subspan(offset - stored.offset, stored_end - offset);
}

}  // namespace diskgate::probe
