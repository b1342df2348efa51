#include <catch2/catch.hpp>

#include "probe/test_support.h"
