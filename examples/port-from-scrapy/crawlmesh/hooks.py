class CrawlerHeader:
    """Names the crawler in a request header (a downloader middleware's
    process_request, as a fetch hook: it returns the request to send)."""

    def on_request(self, request, node):
        return request.replace(headers={**(request.headers or {}), "X-Crawler": "books-port"})
