from items import Book

from crawlmesh import CrawlSpider, LinkExtractor, Rule


class ShopSpider(CrawlSpider):
    name = "shop"
    allowed_domains = ["127.0.0.1"]
    start_urls = ["http://127.0.0.1:8000/"]
    rules = (
        Rule(LinkExtractor(allow=r"/page/\d+\.html$"), follow=True),
        Rule(LinkExtractor(allow=r"/catalogue/book-\d+\.html$"), callback="parse_book"),
    )

    def __init__(self, start_url=None, **kwargs):
        super().__init__(**kwargs)
        if start_url:
            self.start_urls = [start_url]

    def parse_book(self, response):
        book = Book()
        book["title"] = response.css("h1.title::text").get()
        book["price"] = response.css("p.price::text").get()
        book["sku"] = response.css("span.sku::text").get()
        book["url"] = response.url
        book["crawler"] = (response.request.headers or {}).get("X-Crawler", "")
        yield book
