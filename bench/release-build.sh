# Sourced by the benchmarks: builds what they measure as it ships, in
# build-release/ (-Os with link-time optimisation, no tests), unless BUILD
# names another build directory. Sets BUILD.
if [[ -z ${BUILD:-} ]]; then
  BUILD=$ROOT/build-release
  if [[ ! -d $BUILD ]]; then
    meson setup "$BUILD" --buildtype=minsize -Db_lto=true -Dtests=false >/dev/null
  fi
  ninja -C "$BUILD" src/diskgated src/diskgatectl src/diskgatectl-bus.so bench/bench-hotplug bench/bench-trivial >/dev/null
fi
