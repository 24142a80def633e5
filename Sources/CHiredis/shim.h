// The system libhiredis (Debian 12: 0.14.1) with its async API. Included through a local
// header rather than an absolute path so pkg-config's include directory is honoured.
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
