// The system's SQLite (Debian's libsqlite3), the one copy of SQLite in the process: two copies
// on one database file would each keep their own POSIX locks, and closing a file in one releases
// the other's locks (https://www.sqlite.org/howtocorrupt.html, section 2.2.1).
#include <sqlite3.h>

// Debian builds SQLite with memory statistics on (SQLITE_DEFAULT_MEMSTATUS=1): every allocation
// then takes a global mutex to count itself. Cortex reads no statistics, so they are turned off
// once, before the first connection initialises the library. (`sqlite3_config` is variadic, which
// Swift cannot call.)
static inline int cortex_sqlite3_disable_memory_statistics(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
