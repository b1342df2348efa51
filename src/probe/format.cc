#include "probe/format.h"

namespace diskgate::probe {
Tags report_tags(const Report&, bool) { return {}; }
Tags select_tags(const Tags& tags, const std::vector<std::string>&) { return tags; }
std::string safe_print(std::string_view v, std::string_view) { return std::string(v); }
std::string encode_string(std::string_view v) { return std::string(v); }
std::string safe_string(std::string_view v) { return std::string(v); }
std::string format_device(std::string_view, const Tags&, OutputFormat, bool, bool) { return {}; }
}  // namespace diskgate::probe
