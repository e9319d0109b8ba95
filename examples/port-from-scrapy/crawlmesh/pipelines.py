import os
import sqlite3

from crawlmesh import DropItem


class CleanPrice:
    """'£12.34' -> 12.34; a book without a price is dropped."""

    def process_item(self, item, spider):
        if not item.get("price"):
            raise DropItem("no price")
        item["price"] = float(item["price"].lstrip("£"))
        return item


class SaveToSqlite:
    """Every book into a SQLite table, committed when the crawl ends."""

    def open(self, spider):
        self.db = sqlite3.connect(os.environ.get("BOOKS_SQLITE", "books.sqlite3"))
        self.db.execute("DROP TABLE IF EXISTS books")
        self.db.execute("CREATE TABLE books (sku TEXT PRIMARY KEY, title TEXT, price REAL)")

    def process_item(self, item, spider):
        self.db.execute(
            "INSERT INTO books VALUES (?, ?, ?)", (item["sku"], item["title"], item["price"])
        )
        return item

    def close(self, spider):
        self.db.commit()
        self.db.close()
