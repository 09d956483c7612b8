#pragma once
// Catch printing of azure::Result<T>.
#include "azure/error.hpp"
#include "support/catch_result.hpp"
