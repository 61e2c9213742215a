// glibc's malloc tuning (mallopt, M_MMAP_THRESHOLD), which Swift's Glibc module does not import.
#include <malloc.h>
