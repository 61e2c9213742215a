// libjpeg-turbo's TurboJPEG API: errors are return values, never longjmp into the caller.
#include <stddef.h>
#include <turbojpeg.h>
