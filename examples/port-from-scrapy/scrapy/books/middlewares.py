class CrawlerHeader:
    """Names the crawler in a request header."""

    def process_request(self, request, spider):
        request.headers["X-Crawler"] = "books-port"
        return None
