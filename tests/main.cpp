// Catch2 runner for the maskmix test suite.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
