"""Generate the deterministic static site that the crawl benchmark serves with nginx.

Layout (N pages in total, about 1 in 16 a listing page, the rest item pages)::

    /index.html                          listing 0 (the start page)
    /catalogue/page-0001.html ...        listings 1 .. L-1
    /catalogue/sNN/item-000000.html ...  item pages, 40 sections

Every page is reachable from ``/index.html``: the listings form a random tree rooted
at the index and each item page is linked from exactly one "parent" listing; on top
of that every page carries random extra links (related items, other listings).
Links mix relative (``item-000123.html``, ``../s07/item-000123.html``,
``../page-0003.html``) and absolute-path (``/catalogue/s07/item-000123.html``) hrefs,
some links appear twice on the same page, and about 1 page in 100 carries a broken
link to a page that does not exist (nginx answers 404).

Item pages hold ``<h1 class="title">``, ``<p class="price">£12.34</p>`` and
``<span class="sku">SKU-000123</span>``; listing pages have no ``h1.title``.

``manifest.json`` (written last, so its presence means the site is complete) records
the page counts, the reachable count (a BFS over the generated hrefs, resolved the
way a browser resolves them) and how many requests a correct crawl makes.

Usage::

    python bench/gen_site.py [--pages 20000] [--out DIR] [--seed 1] [--page-kb 20]
"""

from __future__ import annotations

import argparse
import html
import json
import random
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

GENERATOR_VERSION = 1
SECTIONS = 40
LISTING_EVERY = 16  # one page in 16 is a listing page
ITEMS_PER_LISTING_LINKS = 15  # item links a listing page shows (besides its tree children)
ITEM_LINKS = 20  # target number of <a href> on an item page (before duplicates)
BROKEN_LINK_RATE = 0.01  # share of pages that carry one broken link
BASE = "http://site.invalid"  # only used to resolve hrefs while checking reachability


def _words(text: str) -> list[str]:
    return text.split()


WORDS = _words(
    "alpha amber anchor apple arch arrow atlas autumn badge bamboo banner basket beacon "
    "berry birch blade blossom bolt border bottle branch brass breeze brick bridge bronze "
    "brook brush bucket cabin cable candle canvas canyon carbon cargo castle cedar chain "
    "chalk channel charm cherry chess cider circle citrus clay cliff cloud clover coast "
    "cobalt comet copper coral cotton crane crest crystal cube dawn delta desert diamond "
    "dome dune eagle echo ember emerald engine falcon feather fern fiber field flame flint "
    "forest fossil fountain frost galaxy garden garnet glacier glass globe granite graphite "
    "gravel grove harbor harvest hazel heron hollow honey horizon indigo iris island ivory "
    "jade jasmine jungle kernel kettle lagoon lantern lava leaf lemon linen lotus magnet "
    "maple marble meadow mesa meteor mint mirror mist moss mountain nectar nickel oak oasis "
    "ocean olive onyx orbit orchid panel paper pearl pebble pepper pine planet plum pollen "
    "prairie prism quartz quill rain raven reed ridge river robin rocket rose ruby saddle "
    "sage salt sand sapphire satin shadow shell silk silver slate smoke spark spice spruce "
    "spring stone storm summit sun swift thistle thunder tide timber topaz torch tulip "
    "tundra valley velvet violet walnut wave willow winter wool zephyr"
)
ADJECTIVES = _words(
    "Antique Bold Classic Compact Deluxe Elegant Essential Fine Grand Handmade Heavy Light "
    "Modern Natural Original Portable Premium Rustic Sturdy Vintage"
)
NOUNS = _words(
    "Backpack Blanket Bottle Candle Chair Clock Cushion Desk Jacket Kettle Lamp Mirror Mug "
    "Notebook Pillow Planter Scarf Shelf Teapot Vase"
)


@dataclass
class Page:
    """One page of the site: its path and the hrefs it carries, in document order."""

    path: str
    kind: str  # "listing" or "item"
    index: int  # listing number or item number
    hrefs: list[str] = field(default_factory=list)


def listing_path(j: int) -> str:
    return "/index.html" if j == 0 else f"/catalogue/page-{j:04d}.html"


def item_section(k: int) -> int:
    return k % SECTIONS


def item_path(k: int) -> str:
    return f"/catalogue/s{item_section(k):02d}/item-{k:06d}.html"


def item_name(k: int) -> str:
    rng = random.Random(k * 7919 + 17)
    return f"{rng.choice(ADJECTIVES)} {rng.choice(WORDS).title()} {rng.choice(NOUNS)} {k}"


def item_price(k: int) -> str:
    cents = (k * 2654435761) % 99_000 + 500
    return f"£{cents // 100}.{cents % 100:02d}"


def href_to_listing(src: Page, j: int, rng: random.Random) -> str:
    """A href from src to listing j, relative or absolute-path at random."""
    target = listing_path(j)
    if rng.random() < 0.4:
        return target
    if src.kind == "listing":
        # listings live in /catalogue/ (the index is one level up)
        if j == 0:
            return "../index.html" if src.index != 0 else "index.html"
        return target[len("/catalogue/") :] if src.index != 0 else target.lstrip("/")
    # item pages live in /catalogue/sNN/
    if j == 0:
        return "../../index.html"
    return "../" + target[len("/catalogue/") :]


def href_to_item(src: Page, k: int, rng: random.Random) -> str:
    """A href from src to item k, relative or absolute-path at random."""
    target = item_path(k)
    if rng.random() < 0.35:
        return target
    rel = target[len("/catalogue/") :]  # sNN/item-KKKKKK.html
    if src.kind == "listing":
        return ("catalogue/" + rel) if src.index == 0 else rel
    if item_section(src.index) == item_section(k):
        name = target.rsplit("/", 1)[1]
        return name if rng.random() < 0.7 else "./" + name
    return "../" + rel


def build_graph(n_pages: int, seed: int) -> tuple[list[Page], list[Page], list[str]]:
    """Return (listings, items, broken_paths) with every page's hrefs filled in."""
    rng = random.Random(seed)
    n_listings = max(1, n_pages // LISTING_EVERY)
    n_items = n_pages - n_listings
    listings = [Page(listing_path(j), "listing", j) for j in range(n_listings)]
    items = [Page(item_path(k), "item", k) for k in range(n_items)]

    # Spanning tree: listing j > 0 hangs under a random earlier listing; item pages are
    # shuffled and dealt out to listings in contiguous chunks.
    listing_parent = [0] + [rng.randrange(j) for j in range(1, n_listings)]
    listing_children: list[list[int]] = [[] for _ in range(n_listings)]
    for j in range(1, n_listings):
        listing_children[listing_parent[j]].append(j)
    order = list(range(n_items))
    rng.shuffle(order)
    item_parent = [0] * n_items
    listing_items: list[list[int]] = [[] for _ in range(n_listings)]
    for pos, k in enumerate(order):
        j = pos * n_listings // max(1, n_items)
        item_parent[k] = j
        listing_items[j].append(k)

    n_broken_pool = max(1, n_pages // 200)
    broken_pool = [
        f"/catalogue/s{b % SECTIONS:02d}/item-{n_items + b:06d}.html" for b in range(n_broken_pool)
    ]
    broken_used: set[str] = set()

    def maybe_broken(page: Page) -> None:
        if rng.random() < BROKEN_LINK_RATE:
            target = rng.choice(broken_pool)
            broken_used.add(target)
            page.hrefs.insert(rng.randrange(len(page.hrefs) + 1), target)

    for page in listings:
        j = page.index
        hrefs = page.hrefs
        hrefs.append(href_to_listing(page, 0, rng))  # "Home" in the header
        if j > 0:
            hrefs.append(href_to_listing(page, listing_parent[j], rng))  # breadcrumb
        hrefs.extend(href_to_listing(page, c, rng) for c in listing_children[j])
        cards = list(listing_items[j])
        while len(cards) < ITEMS_PER_LISTING_LINKS and n_items > 0:
            cards.append(rng.randrange(n_items))
        for k in cards:
            hrefs.append(href_to_item(page, k, rng))
        if cards and rng.random() < 0.5:  # the first card's image links there too
            hrefs.insert(len(hrefs) - len(cards) + 1, hrefs[len(hrefs) - len(cards)])
        if j + 1 < n_listings:
            hrefs.append(href_to_listing(page, j + 1, rng))  # "next"
        if j > 0:
            hrefs.append(href_to_listing(page, j - 1, rng))  # "previous"
        maybe_broken(page)

    for page in items:
        k = page.index
        hrefs = page.hrefs
        hrefs.append(href_to_listing(page, 0, rng))  # "Home"
        parent_href = href_to_listing(page, item_parent[k], rng)
        hrefs.append(parent_href)  # breadcrumb
        related = [rng.randrange(n_items) for _ in range(ITEM_LINKS - 5)]
        hrefs.extend(href_to_item(page, r, rng) for r in related)
        hrefs.append(href_to_listing(page, rng.randrange(n_listings), rng))  # "more like this"
        hrefs.append(href_to_item(page, k, rng))  # self link ("permalink")
        if rng.random() < 0.5:
            hrefs.append(hrefs[2])  # a related item linked twice
        hrefs.append(parent_href)  # "back to list" repeats the breadcrumb
        maybe_broken(page)

    return listings, items, sorted(broken_used)


def reachable_count(pages: list[Page], start: str = "/index.html") -> tuple[int, int]:
    """BFS over the resolved hrefs; return (reachable existing pages, distinct 404 URLs)."""
    by_path = {p.path: p for p in pages}
    seen = {start}
    missing: set[str] = set()
    queue = deque([start])
    while queue:
        page = by_path[queue.popleft()]
        base = BASE + page.path
        for href in page.hrefs:
            url = urljoin(base, href)
            assert url.startswith(BASE + "/"), url
            path = url[len(BASE) :]
            if path in seen or path in missing:
                continue
            if path in by_path:
                seen.add(path)
                queue.append(path)
            else:
                missing.add(path)
    return len(seen), len(missing)


class Filler:
    """Deterministic lorem-ipsum style paragraphs used to bring pages up to size."""

    def __init__(self, rng: random.Random, n: int = 600) -> None:
        self.paragraphs = []
        for _ in range(n):
            words = rng.choices(WORDS, k=rng.randrange(50, 130))
            text = " ".join(words)
            self.paragraphs.append(text[0].upper() + text[1:] + ".")

    def fill(self, rng: random.Random, budget: int) -> str:
        out: list[str] = []
        used = 0
        while used < budget:
            para = f'<p class="text">{rng.choice(self.paragraphs)}</p>\n'
            out.append(para)
            used += len(para)
        return "".join(out)


def link_text(href: str) -> str:
    name = href.rstrip("/").rsplit("/", 1)[-1].removesuffix(".html")
    return name.replace("-", " ").title()


def render(page: Page, filler: Filler, rng: random.Random, target_bytes: int) -> str:
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    )
    hrefs = page.hrefs
    if page.kind == "item":
        name = item_name(page.index)
        title = f"{name} | Bench Store"
        # hrefs[0] home, hrefs[1] breadcrumb, then related items, the rest trail them.
        nav = (
            f'<nav class="breadcrumb"><a href="{hrefs[0]}">Home</a> / '
            f'<a href="{hrefs[1]}">{link_text(hrefs[1])}</a></nav>\n'
        )
        main = (
            f'<article class="product">\n<h1 class="title">{html.escape(name)}</h1>\n'
            f'<p class="price">{item_price(page.index)}</p>\n'
            f'<p class="stock">In stock ({(page.index * 31) % 97 + 1} available)</p>\n'
            f'<span class="sku">SKU-{page.index:06d}</span>\n'
        )
        trail = hrefs[2:]
    else:
        title = f"Catalogue page {page.index} | Bench Store"
        nav = f'<nav class="breadcrumb"><a href="{hrefs[0]}">Home</a></nav>\n'
        main = f'<section class="listing">\n<h1 class="listing-title">Catalogue {page.index}</h1>\n'
        trail = hrefs[1:]
    links: list[str] = []
    for href in trail:
        if "/item-" in href or href.startswith("item-") or href.startswith("./item-"):
            k = int(href.rsplit("item-", 1)[1][:6])
            links.append(
                f'<li class="card"><a href="{href}"><h3 class="title">{link_text(href)}</h3></a>'
                f'<p class="price">{item_price(k)}</p></li>\n'
            )
        else:
            links.append(f'<li class="nav"><a href="{href}">{link_text(href)}</a></li>\n')
    links_html = '<ul class="links">\n' + "".join(links) + "</ul>\n"
    closing = "</article>\n" if page.kind == "item" else "</section>\n"
    footer = (
        '<footer><p class="small">Bench Store — a generated site.</p></footer>\n</body>\n</html>\n'
    )
    fixed = (
        head
        + f"<title>{html.escape(title)}</title>\n</head>\n<body>\n"
        + nav
        + main
        + links_html
        + closing
        + footer
    )
    desc = filler.fill(rng, max(0, target_bytes - len(fixed.encode()) - 40))
    body_main = main + '<div class="description">\n' + desc + "</div>\n" + links_html + closing
    return (
        head + f"<title>{html.escape(title)}</title>\n</head>\n<body>\n" + nav + body_main + footer
    )


def generate(out: Path, n_pages: int, seed: int = 1, page_kb: float = 20.0) -> dict[str, object]:
    """Write the site into out (replacing it) and return the manifest."""
    if n_pages < 2:
        raise ValueError("need at least 2 pages")
    started = time.perf_counter()
    listings, items, broken = build_graph(n_pages, seed)
    pages = listings + items
    reachable, missing = reachable_count(pages)
    if reachable != n_pages:
        raise RuntimeError(f"only {reachable} of {n_pages} pages are reachable")
    if missing != len(broken):
        raise RuntimeError(f"broken links: {missing} found by BFS, {len(broken)} generated")

    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "catalogue").mkdir(parents=True)
    for s in range(SECTIONS):
        (tmp / "catalogue" / f"s{s:02d}").mkdir()
    rng = random.Random(seed + 1)
    filler = Filler(rng)
    target = int(page_kb * 1024)
    total_bytes = 0
    n_links = 0
    for page in pages:
        data = render(page, filler, rng, target).encode()
        (tmp / page.path.lstrip("/")).write_bytes(data)
        total_bytes += len(data)
        n_links += len(page.hrefs)
    manifest: dict[str, object] = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "page_kb": page_kb,
        "start_path": "/index.html",
        "pages": n_pages,
        "listing_pages": len(listings),
        "item_pages": len(items),
        "reachable": reachable,
        "broken_urls": len(broken),
        # A correct crawl fetches every reachable page once and every broken URL once.
        "expected_requests": reachable + len(broken),
        "links": n_links,
        "avg_links_per_page": round(n_links / n_pages, 2),
        "total_bytes": total_bytes,
        "avg_page_bytes": round(total_bytes / n_pages),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    manifest["seconds"] = round(time.perf_counter() - started, 2)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20_000, help="number of pages (20000)")
    parser.add_argument("--out", type=Path, default=None, help="output dir (.work/site-N)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--page-kb", type=float, default=20.0, help="page size in KiB (20)")
    args = parser.parse_args(argv)
    out = args.out or Path(__file__).resolve().parent / ".work" / f"site-{args.pages}"
    manifest = generate(out, args.pages, args.seed, args.page_kb)
    print(f"site written to {out}", file=sys.stderr)
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
