from crawlmesh import Field, Item


class Book(Item):
    title = Field()
    price = Field()
    sku = Field()
    url = Field()
    crawler = Field()
