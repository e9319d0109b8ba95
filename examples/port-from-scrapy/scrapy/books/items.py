import scrapy


class Book(scrapy.Item):
    title = scrapy.Field()
    price = scrapy.Field()
    sku = scrapy.Field()
    url = scrapy.Field()
    crawler = scrapy.Field()
