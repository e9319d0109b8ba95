"""A crawl's durable or shared state: the Backend interface, --jobdir
(SQLite) and --backend redis://."""
