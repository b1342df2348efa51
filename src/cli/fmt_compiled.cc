// fmt's compiled part (what libfmt.so holds), built into diskgatectl so
// that `diskgatectl probe` maps one shared library fewer at start (README,
// bench/probe). Debian ships no libfmt.a, and fmt's header-only mode would
// cost every translation unit several seconds of compilation; this one
// translation unit is fmt's own src/format.cc for the char case. The
// linker takes these definitions before libfmt.so, which --as-needed then
// drops. Nothing to do when fmt is header-only anyway (static builds).
#ifndef FMT_HEADER_ONLY
#include <fmt/format-inl.h>

FMT_BEGIN_NAMESPACE
namespace detail {

template FMT_API auto dragonbox::to_decimal(float x) noexcept -> dragonbox::decimal_fp<float>;
template FMT_API auto dragonbox::to_decimal(double x) noexcept -> dragonbox::decimal_fp<double>;

#ifndef FMT_STATIC_THOUSANDS_SEPARATOR
template FMT_API locale_ref::locale_ref(const std::locale& loc);
template FMT_API auto locale_ref::get<std::locale>() const -> std::locale;
#endif

template FMT_API auto thousands_sep_impl(locale_ref) -> thousands_sep_result<char>;
template FMT_API auto decimal_point_impl(locale_ref) -> char;
template FMT_API void buffer<char>::append(const char*, const char*);

}  // namespace detail
FMT_END_NAMESPACE
#endif
