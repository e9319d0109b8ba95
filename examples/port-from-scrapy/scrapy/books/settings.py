# The Scrapy original of the ported project (see ../README.md).
BOT_NAME = "books"
SPIDER_MODULES = ["books.spiders"]
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 16
ITEM_PIPELINES = {
    "books.pipelines.CleanPrice": 100,
    "books.pipelines.SaveToSqlite": 300,
}
DOWNLOADER_MIDDLEWARES = {"books.middlewares.CrawlerHeader": 543}
FEEDS = {"books.csv": {"format": "csv", "fields": ["title", "price", "sku", "url", "crawler"]}}
SQLITE_PATH = "books.sqlite3"
LOG_LEVEL = "WARNING"
REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"
TELNETCONSOLE_ENABLED = False
