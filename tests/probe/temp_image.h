// An image written to a sparse temporary file, for tests that read it through
// FileSource (pread, caching, read counting) as diskgatectl does. Growing the
// file to a real disk size matters: blkid and our probers act differently on
// small devices. The file is removed when the object goes.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "probe/test_support.h"

namespace diskgate::probe::testing {

class TempImage {
 public:
  // Writes `image` and extends the file with a hole to `size` bytes (when
  // larger than the image).
  explicit TempImage(const Image& image, std::uint64_t size = 0) {
    const char* dir = std::getenv("TMPDIR");
    path_ = std::string(dir && *dir ? dir : "/tmp") + "/diskgate-test-XXXXXX";
    int fd = ::mkstemp(path_.data());
    if (fd < 0) FAIL("cannot create a temporary file in " << path_);
    std::size_t written = 0;
    while (written < image.size()) {
      ssize_t n = ::write(fd, image.data() + written, image.size() - written);
      if (n <= 0) break;
      written += static_cast<std::size_t>(n);
    }
    bool ok = written == image.size();
    if (ok && size > image.size()) ok = ::ftruncate(fd, static_cast<off_t>(size)) == 0;
    ::close(fd);
    if (!ok) {
      ::unlink(path_.c_str());
      FAIL("cannot write " << path_);
    }
  }
  ~TempImage() { ::unlink(path_.c_str()); }
  TempImage(const TempImage&) = delete;
  TempImage& operator=(const TempImage&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

constexpr std::uint64_t kOneGiB = std::uint64_t{1} << 30;

}  // namespace diskgate::probe::testing
