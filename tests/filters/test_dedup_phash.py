import io

from PIL import Image, ImageEnhance

from filters.dedup.phash import hamming, phash, phash_clusters
from tests.conftest import shared_path


def _jpeg(img, quality=90):
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_phash_is_robust_to_resizing_and_recompression_and_separates_photos():
    folder = shared_path("data", "images")
    cat = Image.open(folder / "skimage__chelsea.png")
    coffee = Image.open(folder / "skimage__coffee.png")
    h = phash(_jpeg(cat))
    small = phash(_jpeg(cat.resize((cat.width // 3, cat.height // 3)), quality=40))
    brighter = phash(_jpeg(ImageEnhance.Brightness(cat).enhance(1.2)))
    assert hamming(h, small) <= 4 and hamming(h, brighter) <= 6
    assert hamming(h, phash(_jpeg(coffee))) > 16
    assert phash(b"not an image") is None


def test_clusters_map_urls_to_one_canonical_url():
    folder = shared_path("data", "images")
    cat = Image.open(folder / "skimage__chelsea.png")
    urls = ["https://cdn2/cat.jpg", "https://cdn1/cat.jpg", "https://x/coffee.jpg", "https://bad"]
    hashes = [phash(_jpeg(cat)), phash(_jpeg(cat.resize((200, 150)), 50)),
              phash(_jpeg(Image.open(folder / "skimage__coffee.png"))), None]
    assert phash_clusters(urls, hashes, 4) == {"https://cdn2/cat.jpg": "https://cdn1/cat.jpg",
                                               "https://cdn1/cat.jpg": "https://cdn1/cat.jpg"}


def test_canonical_keys_feed_the_image_url_pass():
    from filters.dedup.config import DedupConfig
    from filters.dedup.image_url import image_url_dedup
    from filters.dedup.phash import canonical_image_keys
    from tests.filters.dedup_helpers import make_doc

    cat = Image.open(shared_path("data", "images") / "skimage__chelsea.png")
    urls = [f"https://cdn{k}/cat.jpg" for k in range(11)]
    payloads = [_jpeg(cat.resize((300 - 5 * k, 225 - 4 * k)), 60 + 3 * k) for k in range(11)]
    canonical = canonical_image_keys(urls, payloads)
    assert set(canonical.values()) == {"https://cdn0/cat.jpg"}
    docs = [make_doc(f"https://s{k}.com/", [u]) for k, u in enumerate(urls)]
    r = image_url_dedup(docs, DedupConfig(), canonical=canonical)  # 11 documents show one picture
    assert not any(i for d in r.docs for i in d.images)


def test_phash_opens_bytes_with_the_safe_decoders_only():
    """Bytes in a format outside filters.image.SAFE_DECODERS (EPS would run Ghostscript) are not hashed."""
    import io

    from PIL import Image

    from filters.dedup.phash import phash

    img = Image.new("RGB", (64, 48), (200, 30, 30))
    for fmt, hashed in (("PNG", True), ("JPEG", True), ("TGA", False), ("PCX", False)):
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        assert (phash(buf.getvalue()) is not None) is hashed, fmt
        assert phash(Image.open(io.BytesIO(buf.getvalue()))) is not None  # a PIL image given is hashed
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert phash(eps) is None
