#pragma once
// Catch printing of kube::Result<T>.
#include "kube/error.hpp"
#include "support/catch_result.hpp"
