// The system's SQLite (Debian's libsqlite3), the one copy of SQLite in the process: two copies
// on one database file would each keep their own POSIX locks, and closing a file in one releases
// the other's locks (https://www.sqlite.org/howtocorrupt.html, section 2.2.1).
#include <sqlite3.h>
