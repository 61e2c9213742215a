// libpng's simplified API (png_image_*): errors are reported through the image's message,
// never by longjmp into the caller.
#include <png.h>
