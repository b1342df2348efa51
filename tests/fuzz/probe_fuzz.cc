// libFuzzer target for the probe driver: every superblock prober and both
// partition-table probers (probe_source), then the blkid output formatters
// on what they found.
//
// Input layout:
//   bytes 0..7  little-endian u64 H. Bit 0 of H (the first byte's low bit)
//               asks for checksum repair; the device size is H >> 1, capped
//               at kMaxDeviceSize.
//   bytes 8..   the device's head; the device is zero beyond it (and is cut
//               at its size when the head is longer).
// With repair on, the checksums the probers verify are recomputed over the
// mutated bytes before probing, so that mutations reach the fields behind
// them: ext4 metadata_csum (crc32c of the superblock), btrfs superblock csum
// (crc32c, xxhash64, sha256, blake2b by csum_type), exFAT boot region
// checksum (sector 11), GPT entry array CRC32 and header CRC32 (primary at
// LBA 1 and backup at the last LBA when it lies in the head).
//
// Invariants: no exception escapes probe_source (the Source never throws
// IoError); no single read asks for more than kMaxRead bytes (probers
// bound their reads); probing twice gives the same report; find_entry finds
// every entry of a table at its own start; format_device never throws.
// A crash here is a bug; keep the input under tests/fuzz/regressions/probe-fuzz/.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "require.h"
#include "probe/checksums.h"
#include "probe/fat_common.h"
#include "probe/format.h"
#include "probe/probe.h"
#include "probe/source.h"

namespace {

using namespace diskgate::probe;

constexpr std::uint64_t kMaxDeviceSize = std::uint64_t{1} << 44;  // 16 TiB
constexpr std::size_t kMaxRead = 4u << 20;                        // 4 MiB
constexpr std::size_t kZeroSpan = 1u << 20;

using diskgate::fuzz::require;

// `head` then zeros up to `size`; never throws.
class HeadSource : public Source {
 public:
  HeadSource(const std::vector<std::byte>& head, std::uint64_t size) : head_(head), size_(size) {}
  std::uint64_t size() const override { return size_; }
  Bytes read(std::uint64_t offset, std::size_t length) override {
    require(length <= kMaxRead);
    if (offset >= size_) return {};
    if (length > size_ - offset) length = static_cast<std::size_t>(size_ - offset);
    if (offset + length <= head_.size()) return Bytes(head_.data() + offset, length);
    if (offset >= head_.size() && length <= kZeroSpan) return Bytes(zeros().data(), length);
    std::vector<std::byte>& chunk = chunks_.emplace_back(length);
    if (offset < head_.size()) std::memcpy(chunk.data(), head_.data() + offset, head_.size() - offset);
    return Bytes(chunk.data(), chunk.size());
  }

 private:
  static const std::vector<std::byte>& zeros() {
    static const std::vector<std::byte> z(kZeroSpan);
    return z;
  }
  const std::vector<std::byte>& head_;
  std::uint64_t size_;
  std::deque<std::vector<std::byte>> chunks_;
};

std::uint32_t get32(const std::vector<std::byte>& b, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | std::to_integer<std::uint32_t>(b[at + i]);
  return v;
}
std::uint64_t get64(const std::vector<std::byte>& b, std::size_t at) {
  return get32(b, at) | (std::uint64_t{get32(b, at + 4)} << 32);
}
void put32(std::vector<std::byte>& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = std::byte(static_cast<std::uint8_t>(v >> (8 * i)));
}
bool magic(const std::vector<std::byte>& b, std::size_t at, std::string_view text) {
  return at + text.size() <= b.size() && std::memcmp(b.data() + at, text.data(), text.size()) == 0;
}
Bytes span_of(const std::vector<std::byte>& b, std::size_t at, std::size_t n) { return Bytes(b.data() + at, n); }

void repair_ext(std::vector<std::byte>& d) {
  constexpr std::size_t sb = 1024;
  if (d.size() < sb + 1024 || !magic(d, sb + 0x38, "\x53\xEF")) return;
  if (!(get32(d, sb + 0x64) & 0x400)) return;
  put32(d, sb + 0x3FC, crc32c_update(~0u, span_of(d, sb, 0x3FC)));
}

void repair_btrfs(std::vector<std::byte>& d) {
  constexpr std::size_t sb = 64 * 1024, n = 4096;
  if (d.size() < sb + n || !magic(d, sb + 0x40, "_BHRfS_M")) return;
  Bytes covered = span_of(d, sb + 32, n - 32);
  unsigned type = std::to_integer<unsigned>(d[sb + 196]) | (std::to_integer<unsigned>(d[sb + 197]) << 8);
  switch (type) {
    case 0: put32(d, sb, ~crc32c_update(~0u, covered)); break;
    case 1: {
      std::uint64_t h = xxhash64(covered);
      put32(d, sb, static_cast<std::uint32_t>(h));
      put32(d, sb + 4, static_cast<std::uint32_t>(h >> 32));
      break;
    }
    case 2: { auto h = sha256(covered); std::memcpy(d.data() + sb, h.data(), h.size()); break; }
    case 3: { auto h = blake2b_256(covered); std::memcpy(d.data() + sb, h.data(), h.size()); break; }
    default: break;
  }
}

void repair_exfat(std::vector<std::byte>& d) {
  if (d.size() < 512 || !magic(d, 3, "EXFAT   ")) return;
  unsigned shift = std::to_integer<unsigned>(d[108]);
  if (shift < 9 || shift > 12) return;
  std::size_t sector = std::size_t{1} << shift;
  if (d.size() < 12 * sector) return;
  std::uint32_t sum = exfat_boot_checksum(span_of(d, 0, 11 * sector));
  for (std::size_t at = 11 * sector; at < 12 * sector; at += 4) put32(d, at, sum);
}

// The device's bytes [offset, offset + n) (head, then zeros); false when they
// pass the end of the device.
bool device_bytes(const std::vector<std::byte>& d, std::uint64_t size, std::uint64_t offset, std::size_t n,
                  std::vector<std::byte>& out) {
  if (offset > size || n > size - offset) return false;
  out.assign(n, std::byte{0});
  if (offset < d.size()) std::memcpy(out.data(), d.data() + offset, std::min<std::uint64_t>(n, d.size() - offset));
  return true;
}

void repair_gpt_header(std::vector<std::byte>& d, std::uint64_t size, std::uint64_t at) {
  if (at + 512 > d.size() || !magic(d, at, "EFI PART")) return;
  std::uint32_t header_size = get32(d, at + 12);
  if (header_size < 92 || header_size > 512) return;
  std::uint64_t array_bytes = std::uint64_t{get32(d, at + 80)} * get32(d, at + 84);
  std::vector<std::byte> entries;
  if (array_bytes > 0 && array_bytes <= (1u << 20) &&
      device_bytes(d, size, get64(d, at + 72) * 512, static_cast<std::size_t>(array_bytes), entries))
    put32(d, at + 88, crc32_ieee(entries));
  std::vector<std::byte> header(d.begin() + at, d.begin() + at + header_size);
  std::memset(header.data() + 16, 0, 4);
  put32(d, at + 16, crc32_ieee(header));
}

void repair_gpt(std::vector<std::byte>& d, std::uint64_t size) {
  if (size < 1024) return;
  repair_gpt_header(d, size, 512);
  std::uint64_t last = (size / 512 - 1) * 512;
  if (last != 512) repair_gpt_header(d, size, last);
}

void check_formats(const Report& report) {
  static const std::vector<std::string> none, some{"TYPE", "LABEL", "UUID", "PTTYPE", "NOSUCH"};
  for (bool low_level : {false, true}) {
    Tags tags = report_tags(report, low_level);
    for (const Tag& tag : tags) {
      require(!tag.name.empty());
      (void)safe_print(tag.value, "\"");
      (void)encode_string(tag.value);
      (void)safe_string(tag.value);
    }
    Tags selected = select_tags(tags, some);
    require(selected.size() <= tags.size());
    for (const Tag& tag : selected) require(tag.name == "TYPE" || tag.name == "LABEL" || tag.name == "UUID" || tag.name == "PTTYPE");
    for (auto format : {OutputFormat::full, OutputFormat::export_, OutputFormat::value, OutputFormat::udev,
                        OutputFormat::json})
      for (const auto* wanted : {&none, &some})
        for (bool first : {false, true}) (void)format_device("/dev/fuzz", tags, *wanted, format, low_level, first);
    (void)counts_as_printed(tags, none, low_level);
    (void)counts_as_printed(tags, some, low_level);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  std::uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | data[i];
  const bool repair = header & 1;
  const std::uint64_t device_size = std::min(header >> 1, kMaxDeviceSize);
  std::size_t head_size = static_cast<std::size_t>(std::min<std::uint64_t>(size - 8, device_size));
  std::vector<std::byte> head(reinterpret_cast<const std::byte*>(data + 8),
                              reinterpret_cast<const std::byte*>(data + 8 + head_size));
  if (repair) {
    repair_ext(head);
    repair_btrfs(head);
    repair_exfat(head);
    repair_gpt(head, device_size);
  }

  std::vector<std::string> lines;
  Debug debug = [&](std::string_view line) {
    require(!line.empty());
    lines.emplace_back(line);
  };
  HeadSource source(head, device_size);
  Report report = probe_source(source, debug);
  for (const Superblock& sb : report.superblocks) {
    require(!sb.type.empty());
    require(sb.btrfs.has_value() == (sb.type == "btrfs"));
  }
  if (report.table) {
    require(report.table->type == "gpt" || report.table->type == "dos" || report.table->type == "PMBR");
    for (const PartitionEntry& entry : report.table->entries) {
      auto found = find_entry(*report.table, entry.start, entry.size);
      require(found && found->start == entry.start);
    }
  }
  check_formats(report);
  // The same again, without a debug sink: the same tags come out.
  HeadSource again_source(head, device_size);
  Report again = probe_source(again_source, nullptr);
  require(report_tags(again, true) == report_tags(report, true));
  require(report_tags(again, false) == report_tags(report, false));
  return 0;
}
