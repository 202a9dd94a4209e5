# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The ``default`` profile's walk, compiled: the same rules as :func:`obelics.html.extract_default._walk_python`.

Written by hand because no library walks a lexbor tree with these rules, and the Python walk spends most of a
page's time (0.9 of 1.3 ms) in the interpreter, reading each node through selectolax's Python objects. This
walk reads the tree selectolax built through lexbor's public C API: the ``lxb_*_noi`` accessors and text
functions that selectolax's extension module exports, looked up with ``dlsym`` in the module Python already
loaded. It depends on those functions' signatures; of lexbor's struct layout it reads one field, a text node's
own bytes (``lxb_dom_character_data_t.data``, where selectolax reads them too), and only after checking its offset
on probe nodes at import (else each text is copied out by ``lxb_dom_node_text_content``, as before; see
:func:`text_reads`). Where the functions cannot be found (another platform, a selectolax built without them),
:data:`AVAILABLE` is False and the Python walk runs.

Per node it does in C what the Python walk does: tag kinds and break levels from a table by lexbor tag id,
the attribute checks, whitespace collapsing on the UTF-8 bytes, character counts for the boilerplate and
link-density shares, the CSS look-ups for an article or a password field. The rest is the Python code of
:mod:`obelics.html.extract_default`, called from here so that it is written once: the boilerplate verdict of
an element's attributes (cached per class value), image sources and metadata, ``<pre>`` text, the emitter.
``tests/obelics/test_html_default_walks.py`` checks that both walks give identical output on every shared
page, the sample and edge cases.
"""

from libc.stdint cimport uint64_t, uintptr_t
from libc.stdlib cimport malloc, calloc, realloc, free, qsort
from libc.string cimport memchr, memcmp, memcpy
from cpython.unicode cimport PyUnicode_DecodeUTF8, PyUnicode_DecodeASCII

cdef extern from "<dlfcn.h>" nogil:
    void *dlopen(const char *filename, int flag)
    void *dlsym(void *handle, const char *symbol)
    int RTLD_NOW
    int RTLD_NOLOAD

# lexbor's public functions, as declared in lexbor/dom/interfaces/{node,element,attr,document}.h
ctypedef void *(*node_fn_t)(void *) noexcept nogil
ctypedef uintptr_t (*tag_id_fn_t)(void *) noexcept nogil
ctypedef int (*type_fn_t)(void *) noexcept nogil
ctypedef const unsigned char *(*name_fn_t)(void *, size_t *) noexcept nogil
ctypedef unsigned char *(*text_fn_t)(void *, size_t *) noexcept nogil
ctypedef unsigned char *(*destroy_text_fn_t)(void *, unsigned char *) noexcept nogil

cdef node_fn_t first_child_f = NULL
cdef node_fn_t next_f = NULL
cdef node_fn_t parent_f = NULL
cdef tag_id_fn_t tag_id_f = NULL
cdef type_fn_t type_f = NULL
cdef node_fn_t first_attr_f = NULL
cdef node_fn_t next_attr_f = NULL
cdef name_fn_t attr_name_f = NULL
cdef name_fn_t attr_value_f = NULL
cdef name_fn_t element_name_f = NULL
cdef text_fn_t text_content_f = NULL
cdef destroy_text_fn_t destroy_text_f = NULL

# A node's links, tag id and type: lexbor's ``*_noi`` functions return these fields of lxb_dom_node_t, declared
# here as selectolax's lexbor.pxd declares it (selectolax reads them the same way). The walk and the page
# statistics read four of them per node, twice a page; a call through a function pointer each time (an
# indirect call lexbor's inlining cannot remove) was about a fifth of those passes. probe_node_layout checks
# every field against the functions on a probe tree at import and leaves DIRECT_NODES False (the functions)
# when one differs.
ctypedef struct _LxbNode:
    void *events
    uintptr_t local_name  # the tag id
    uintptr_t prefix
    uintptr_t ns
    void *owner_document
    _LxbNode *next
    _LxbNode *prev
    _LxbNode *parent
    _LxbNode *first_child
    _LxbNode *last_child
    void *user
    int type  # lxb_dom_node_type_t

cdef bint DIRECT_NODES = False


cdef inline void *_first_child(void *node) noexcept nogil:
    if DIRECT_NODES:
        return (<_LxbNode *> node).first_child
    return first_child_f(node)


cdef inline void *_next(void *node) noexcept nogil:
    if DIRECT_NODES:
        return (<_LxbNode *> node).next
    return next_f(node)


cdef inline void *_parent(void *node) noexcept nogil:
    if DIRECT_NODES:
        return (<_LxbNode *> node).parent
    return parent_f(node)


cdef inline uintptr_t _tag_id(void *node) noexcept nogil:
    if DIRECT_NODES:
        return (<_LxbNode *> node).local_name
    return tag_id_f(node)


cdef inline int _type(void *node) noexcept nogil:
    if DIRECT_NODES:
        return (<_LxbNode *> node).type
    return type_f(node)

cdef enum:
    NODE_ELEMENT = 1
    NODE_TEXT = 3
    NODE_DOCUMENT = 9
    NTAG = 4096  # lexbor's static tag ids are below 0x100; a tag it does not know gets a pointer as id
    MAX_NAMES = 16  # room for each of the small tables configure() copies from extract_default

# what the walk does with an element: extract_default's _K_* values, taken by configure()
cdef int K_SKIP = -1, K_IMG = -1, K_PICTURE = -1, K_BR = -1, K_LIST = -1, K_ITEM = -1, K_TABLE = -1
cdef int K_NOSCRIPT = -1, K_PRE = -1, K_ARTICLE = -1, K_MAIN = -1

# per-tag flags
cdef enum:
    F_NO_CHECK = 1
    F_ARTICLE_ONLY = 2
    F_CONTENT = 4
    F_DIV = 8
    F_SKIP = 16  # a removed tag, or a node that is neither text nor a named element


cdef int _missing = 0


cdef void *_symbol(void *handle, const char *name) noexcept:
    global _missing
    cdef void *found = dlsym(handle, name)
    if found == NULL:
        _missing += 1
    return found


# A text node's bytes: lexbor keeps them in the node (lxb_dom_character_data_t = {lxb_dom_node_t node;
# lexbor_str_t data}, lexbor_str_t = {lxb_char_t *data; size_t length}), and lxb_dom_node_text_content hands out a
# copy of them, allocated in the document. The walk and the page statistics read every text node of a page, the
# walk's content a second time: reading the node's own bytes saves an allocation and a copy each time (the text
# is never changed while the tree is walked). The field's offset is lexbor's layout (twelve pointer-sized
# fields before it, as selectolax's own lexbor.pxd declares lxb_dom_node_t); probe_text_layout checks it on
# probe nodes and leaves TEXT_DATA_OFFSET at -1 (copies) when it does not hold.
ctypedef struct _LxbStr:
    unsigned char *data
    size_t length

cdef Py_ssize_t TEXT_DATA_OFFSET = -1  # offset of a text node's lexbor_str_t; -1: copies (text_content_f)
cdef Py_ssize_t _probed_offset = -1  # what the probe found (text_reads(True) restores it)


cdef inline const unsigned char *_text_bytes(void *node, size_t *n, bint *copied) noexcept nogil:
    """A text node's UTF-8 bytes (valid while its tree lives): its own, or a copy made in its document (then
    ``copied``; lexbor frees it with the tree, or ``destroy_text_f`` earlier). NULL when lexbor has none."""
    cdef _LxbStr *s
    if TEXT_DATA_OFFSET >= 0:
        s = <_LxbStr *> (<char *> node + TEXT_DATA_OFFSET)
        copied[0] = False
        n[0] = s.length if s.data != NULL else 0
        return s.data
    copied[0] = True
    return text_content_f(node, n)


def probe_text_layout(Py_ssize_t offset):
    """``offset`` when a text node's bytes are there (lexbor_str_t), checked on three probe text nodes against
    lexbor's copies of them (their lengths first: no pointer is followed unless the field holds each node's own
    length), else -1. Run at import with lexbor's layout, twelve pointer-sized fields."""
    from selectolax.lexbor import LexborHTMLParser

    cdef _LxbStr *s
    cdef void *node
    cdef unsigned char *copy
    cdef size_t n = 0
    cdef bint ok = True
    texts = ["x" * 4093, "\u00e9t\u00e9 " * 311, "<probe> & 77"]
    tree = LexborHTMLParser("<body>" + "".join(f"<p>{t.replace('<', '&lt;')}</p>" for t in texts) + "</body>")
    found = 0
    for p in tree.body.iter():
        node = _first_child(<void *> <uintptr_t> p.mem_id)
        if node == NULL or _type(node) != NODE_TEXT:
            return -1
        copy = text_content_f(node, &n)
        if copy == NULL:
            return -1
        s = <_LxbStr *> (<char *> node + offset)
        ok = s.length == n and n > 0 and s.data != NULL and memcmp(s.data, copy, n) == 0
        destroy_text_f(_document_of(node), copy)
        if not ok:
            return -1
        found += 1
    return offset if found == len(texts) else -1


cdef void *_document_of(void *node) noexcept nogil:
    while node != NULL and _type(node) != NODE_DOCUMENT:
        node = _parent(node)
    return node


def text_reads(bint direct):
    """Read text nodes' own bytes (``direct``, where the import-time check passed) or lexbor's copies of them;
    returns whether the walk now reads them directly. The two give the same output (tests compare them)."""
    global TEXT_DATA_OFFSET
    TEXT_DATA_OFFSET = _probed_offset if direct else -1
    return TEXT_DATA_OFFSET >= 0


def _load():
    import selectolax.lexbor as lexbor_module

    path = lexbor_module.__file__.encode()
    cdef void *handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD)
    if handle == NULL:
        return False
    global first_child_f, next_f, parent_f, tag_id_f, type_f, first_attr_f, next_attr_f, attr_name_f
    global attr_value_f, element_name_f, text_content_f, destroy_text_f
    first_child_f = <node_fn_t> _symbol(handle, "lxb_dom_node_first_child_noi")
    next_f = <node_fn_t> _symbol(handle, "lxb_dom_node_next_noi")
    parent_f = <node_fn_t> _symbol(handle, "lxb_dom_node_parent_noi")
    tag_id_f = <tag_id_fn_t> _symbol(handle, "lxb_dom_node_tag_id_noi")
    type_f = <type_fn_t> _symbol(handle, "lxb_dom_node_type_noi")
    first_attr_f = <node_fn_t> _symbol(handle, "lxb_dom_element_first_attribute_noi")
    next_attr_f = <node_fn_t> _symbol(handle, "lxb_dom_element_next_attribute_noi")
    attr_name_f = <name_fn_t> _symbol(handle, "lxb_dom_attr_qualified_name")
    attr_value_f = <name_fn_t> _symbol(handle, "lxb_dom_attr_value_noi")
    element_name_f = <name_fn_t> _symbol(handle, "lxb_dom_element_qualified_name")
    text_content_f = <text_fn_t> _symbol(handle, "lxb_dom_node_text_content")
    destroy_text_f = <destroy_text_fn_t> _symbol(handle, "lxb_dom_document_destroy_text_noi")
    return _missing == 0


def probe_node_layout():
    """Whether lxb_dom_node_t's fields (:class:`_LxbNode`) hold what lexbor's functions return, on every node of a
    probe tree (elements known and not, text, comments, a doctype, attributes, nesting, the document): links,
    tag id and type. The functions are called first and each pointer compared before any field is read through
    it."""
    from selectolax.lexbor import LexborHTMLParser

    cdef void *node
    cdef void *doc
    cdef _LxbNode *n
    cdef int seen = 0
    tree = LexborHTMLParser("<!DOCTYPE html><html><head><title>t</title><base href=/x></head><body class=a>"
                            "<div id=d><p>one<b>two</b> three</p><!-- c --><x-custom a=1>four</x-custom>"
                            "<svg><path d=z /></svg><table><tr><td>5</td></tr></table></div>six</body></html>")
    doc = <void *> <uintptr_t> tree.body.mem_id
    while doc != NULL and type_f(doc) != NODE_DOCUMENT:
        doc = parent_f(doc)
    if doc == NULL:
        return False
    node = doc
    while node != NULL:  # depth first through every node, by the functions
        n = <_LxbNode *> node
        if (<void *> n.first_child != first_child_f(node) or <void *> n.next != next_f(node)
                or <void *> n.parent != parent_f(node) or n.local_name != tag_id_f(node) or n.type != type_f(node)):
            return False
        seen += 1
        if first_child_f(node) != NULL:
            node = first_child_f(node)
            continue
        while node != NULL and next_f(node) == NULL:
            node = parent_f(node)
        if node != NULL:
            node = next_f(node)
    return seen >= 20  # (25 nodes)


def node_reads(bint direct):
    """Read nodes' fields directly (``direct``, where the import-time check passed) or through lexbor's
    functions; returns whether the walk now reads them directly. The two give the same output."""
    global DIRECT_NODES
    DIRECT_NODES = direct and _probed_nodes
    return DIRECT_NODES


cdef bint _probed_nodes = False
AVAILABLE = _load()
if AVAILABLE:
    _probed_nodes = DIRECT_NODES = probe_node_layout()
    _probed_offset = TEXT_DATA_OFFSET = probe_text_layout(12 * sizeof(void *))

# the Python side of the rules, taken from extract_default by configure()
cdef object _Emitter = None
cdef object _pre_text = None
cdef object _verdict = None
cdef object _emit_image = None
cdef object _picture_candidates = None
cdef object _emit_eod = None
cdef tuple _SEP = ()
cdef char _sep_bytes[4][8]  # _SEP's break strings as UTF-8, for the text the walk joins in C
cdef size_t _sep_lens[4]
cdef dict _BLOCK_LEVEL = None
cdef frozenset _NO_ATTR_CHECK = None, _CONTENT_TAGS = None
cdef frozenset _STRIPPED = None  # elements whose text is never page text (extract_default._STRIPPED_TAGS)
cdef str _DIV_TAG = None
cdef bytes _DATE_CLASS = None
cdef tuple _PICTURE_PARTS = None
# lexbor's ids of the tags the walk compares, and the attribute names and values it reads in C; the bytes
# objects behind the C strings are kept alive in _keep
cdef uintptr_t TAG_A = 0, TAG_LOGIN = 0, TAG_BASE = 0
cdef uintptr_t stripped_ids[MAX_NAMES]
cdef int n_stripped = 0
cdef uintptr_t content_ids[MAX_NAMES]
cdef int n_content = 0
cdef const char *content_attr = NULL
cdef const char *content_value = NULL
cdef size_t content_attr_len = 0, content_value_len = 0
cdef const char *login_attr = NULL
cdef const char *login_value = NULL
cdef size_t login_attr_len = 0, login_value_len = 0
cdef const char *rule_names[MAX_NAMES]  # extract_default._RULE_ATTRS other than "class"
cdef size_t rule_lens[MAX_NAMES]
cdef int n_rule_names = 0
cdef list _keep = []


cdef const char *_c_string(str text, size_t *n) except NULL:
    """A C string of ``text`` (UTF-8) that lives as long as the module; its length in ``n``."""
    cdef bytes b = text.encode()
    _keep.append(b)
    n[0] = len(b)
    return <const char *> b


def configure(rules_module):
    """Take the rules from ``rules_module`` (extract_default): the Python functions the walk calls, its tag
    kinds, tables and the tag and attribute names it compares in C; learn lexbor's ids of those tags."""
    cdef int i
    m = rules_module
    global _Emitter, _pre_text, _verdict, _emit_image, _picture_candidates, _emit_eod
    global _SEP, _BLOCK_LEVEL, _NO_ATTR_CHECK, _CONTENT_TAGS, _STRIPPED, _DIV_TAG, _DATE_CLASS, _PICTURE_PARTS
    global K_SKIP, K_IMG, K_PICTURE, K_BR, K_LIST, K_ITEM, K_TABLE, K_NOSCRIPT, K_PRE, K_ARTICLE, K_MAIN
    global TAG_A, TAG_LOGIN, TAG_BASE, n_stripped, n_content, n_rule_names
    global content_attr, content_value, content_attr_len, content_value_len
    global login_attr, login_value, login_attr_len, login_value_len
    kinds = (m._K_SKIP, m._K_IMG, m._K_PICTURE, m._K_BR, m._K_LIST, m._K_ITEM, m._K_TABLE, m._K_NOSCRIPT,
             m._K_PRE, m._K_ARTICLE, m._K_MAIN)
    if len(set(kinds)) != len(kinds) or min(kinds) < 1 or max(kinds) > 127:
        raise ImportError(f"extract_default's tag kinds must be distinct and in 1..127: {kinds}")
    K_SKIP, K_IMG, K_PICTURE, K_BR, K_LIST, K_ITEM, K_TABLE, K_NOSCRIPT, K_PRE, K_ARTICLE, K_MAIN = kinds
    _Emitter, _pre_text, _verdict, _emit_image = m._Emitter, m._pre_text, m._verdict, m._emit_image
    _picture_candidates, _emit_eod = m._picture_candidates, m._emit_eod
    _SEP, _BLOCK_LEVEL, _NO_ATTR_CHECK, _CONTENT_TAGS = m._SEP, m._BLOCK_LEVEL, m._NO_ATTR_CHECK, m._CONTENT_TAGS
    seps = [sep.encode() for sep in _SEP]
    if len(seps) != 4 or max(len(sep) for sep in seps) > 8:
        raise ImportError(f"extract_default._SEP does not fit the compiled walk (4 breaks of at most 8 bytes): {_SEP}")
    for i, sep in enumerate(seps):
        _sep_lens[i] = len(sep)
        memcpy(_sep_bytes[i], <const char *> sep, len(sep))
    _STRIPPED, _DIV_TAG, _PICTURE_PARTS = frozenset(m._STRIPPED_TAGS), m._DIV_TAG, tuple(m._PICTURE_PARTS)
    _DATE_CLASS = m._DATE_CLASS.encode()
    rule_attrs = sorted(a for a in m._RULE_ATTRS if a != "class")
    if "class" not in m._RULE_ATTRS or not (len(m._STRIPPED_TAGS) <= MAX_NAMES
                                            and len(m._CONTENT_BLOCK_TAGS) <= MAX_NAMES
                                            and len(rule_attrs) <= MAX_NAMES):
        raise ImportError("extract_default's tables do not fit the compiled walk (class in _RULE_ATTRS, "
                          f"at most {MAX_NAMES} names a table): rebuild it with a larger MAX_NAMES")
    for i, name in enumerate(rule_attrs):
        rule_names[i] = _c_string(name, &rule_lens[i])
    n_rule_names = len(rule_attrs)
    content_attr = _c_string(m._CONTENT_BLOCK_ATTR[0], &content_attr_len)
    content_value = _c_string(m._CONTENT_BLOCK_ATTR[1], &content_value_len)
    login_attr = _c_string(m._LOGIN_FIELD[1], &login_attr_len)
    login_value = _c_string(m._LOGIN_FIELD[2].lower(), &login_value_len)
    from selectolax.lexbor import LexborHTMLParser

    names = [m._LINK_TAG, m._LOGIN_FIELD[0], "base", *m._STRIPPED_TAGS, *m._CONTENT_BLOCK_TAGS]
    probe = LexborHTMLParser("<body>" + "".join(f"<{n}></{n}>" for n in names))
    ids = [_tag_id(<void *> <uintptr_t> n.mem_id) for n in probe.body.iter()]
    if len(ids) != len(names) or max(ids) >= NTAG:
        raise ImportError(f"unexpected lexbor tag ids {ids} for {names}")
    # the tag table keeps ids below NTAG across pages: a tag lexbor does not know must get an id above it
    custom = LexborHTMLParser("<body><x-obelics-probe></x-obelics-probe>").body.child
    if _tag_id(<void *> <uintptr_t> custom.mem_id) < NTAG:
        raise ImportError("lexbor numbers unknown tags below the static range: the tag table would mix them up")
    TAG_A, TAG_LOGIN, TAG_BASE = ids[:3]
    n_stripped = len(m._STRIPPED_TAGS)
    for i in range(n_stripped):
        stripped_ids[i] = ids[3 + i]
    n_content = len(m._CONTENT_BLOCK_TAGS)
    for i in range(n_content):
        content_ids[i] = ids[3 + n_stripped + i]


def base_href(head):
    """The first non-empty ``href`` of a ``<base>`` child of ``head`` (a selectolax node or None), or None."""
    if head is None:
        return None
    cdef void *node = _first_child(<void *> <uintptr_t> head.mem_id)
    cdef size_t n = 0
    cdef const unsigned char *value
    while node != NULL:
        if _type(node) == NODE_ELEMENT and _tag_id(node) == TAG_BASE:
            value = _attr_value(node, "href", 4, &n)
            if value != NULL and n:
                return _decode(value, n)
        node = _next(node)
    return None


cdef inline bint _is(const unsigned char *s, size_t n, const char *lit, size_t m) noexcept nogil:
    return n == m and memcmp(s, lit, m) == 0


cdef inline str _decode(const unsigned char *s, size_t n):
    # the same policy as selectolax: bytes lexbor passed through undecoded become U+FFFD
    return PyUnicode_DecodeUTF8(<const char *> s, n, "replace")


cdef dict _attributes(void *node):
    """An element's attributes as selectolax's ``Node.attributes`` gives them (empty values are None)."""
    cdef dict attrs = {}
    cdef size_t n = 0, vn = 0
    cdef const unsigned char *name
    cdef const unsigned char *value
    cdef void *attr = first_attr_f(node)
    while attr != NULL:
        name = attr_name_f(attr, &n)
        value = attr_value_f(attr, &vn)
        attrs[_decode(name, n) if name != NULL else ""] = _decode(value, vn) if value != NULL else None
        attr = next_attr_f(attr)
    return attrs


cdef int _rule_attrs(void *node, const unsigned char **cls, size_t *cls_len) noexcept nogil:
    """Which of the attributes the verdict reads (extract_default._RULE_ATTRS) the element has: 1 a class,
    2 any other. ``cls`` is set to the class value (NULL for a class without value)."""
    cdef size_t n = 0
    cdef int found = 0, i
    cdef const unsigned char *name
    cdef void *attr = first_attr_f(node)
    while attr != NULL:
        name = attr_name_f(attr, &n)
        if name != NULL:
            if _is(name, n, "class", 5):
                found |= 1
                cls[0] = attr_value_f(attr, cls_len)
            elif not (found & 2):
                for i in range(n_rule_names):
                    if _is(name, n, rule_names[i], rule_lens[i]):
                        found |= 2
                        break
        attr = next_attr_f(attr)
    return found


cdef const unsigned char *_attr_value(void *node, const char *name, size_t name_len, size_t *n) noexcept nogil:
    """The value of an attribute (NULL when absent or without value)."""
    cdef size_t an_len = 0
    cdef const unsigned char *an
    cdef void *attr = first_attr_f(node)
    while attr != NULL:
        an = attr_name_f(attr, &an_len)
        if an != NULL and _is(an, an_len, name, name_len):
            return attr_value_f(attr, n)
        attr = next_attr_f(attr)
    return NULL


cdef extern from *:
    int __builtin_popcountll(unsigned long long) nogil

cdef uint64_t _LOW7 = 0x7F7F7F7F7F7F7F7FULL, _HIGH = 0x8080808080808080ULL


cdef inline uint64_t _zero_bytes(uint64_t y) noexcept nogil:
    """The high bit of each byte of ``y`` that is 0, for bytes under 0x80 (no carry crosses a byte: exact)."""
    return ~(((y & _LOW7) + _LOW7) | y) & _HIGH


cdef inline int _utf8_sequence(const unsigned char *s, size_t i, size_t n) noexcept nogil:
    """The length (2-4) of the well-formed UTF-8 sequence starting with the non-ASCII byte ``s[i]`` (Unicode's
    table 3-7: no overlong forms, surrogates or code points over U+10FFFF, as Python's codec), or 0."""
    cdef unsigned char c = s[i], c1
    cdef int more, k
    if 0xC2 <= c <= 0xDF:
        more = 1
    elif 0xE0 <= c <= 0xEF:
        more = 2
    elif 0xF0 <= c <= 0xF4:
        more = 3
    else:
        return 0
    if i + more >= n:
        return 0
    c1 = s[i + 1]
    if (c == 0xE0 and c1 < 0xA0) or (c == 0xED and c1 > 0x9F) or (c == 0xF0 and c1 < 0x90) or (
            c == 0xF4 and c1 > 0x8F):
        return 0
    for k in range(1, more + 1):
        if s[i + k] & 0xC0 != 0x80:
            return 0
    return more + 1


cdef inline Py_ssize_t _text_counts(const unsigned char *s, size_t n, Py_ssize_t *commas) noexcept nogil:
    """Code points of UTF-8 text minus its ASCII spaces, newlines, tabs and carriage returns; -1 when the
    bytes are not valid UTF-8 (lexbor passes undecodable bytes through: the caller decodes as Python would).
    Eight ASCII bytes are counted at a time: 8 minus those equal to one of the four (a byte-wise zero test).
    With ``commas``, its commas (``,`` and the fullwidth U+FF0C) are added to it in the same pass."""
    cdef size_t i = 0
    cdef Py_ssize_t count = 0
    cdef unsigned char c
    cdef int more
    cdef uint64_t w
    while i < n:
        if i + 8 <= n:
            memcpy(&w, s + i, 8)
            if (w & _HIGH) == 0:
                count += 8 - __builtin_popcountll(
                    _zero_bytes(w ^ 0x2020202020202020ULL) | _zero_bytes(w ^ 0x0A0A0A0A0A0A0A0AULL)
                    | _zero_bytes(w ^ 0x0909090909090909ULL) | _zero_bytes(w ^ 0x0D0D0D0D0D0D0D0DULL))
                if commas != NULL:
                    commas[0] += __builtin_popcountll(_zero_bytes(w ^ 0x2C2C2C2C2C2C2C2CULL))
                i += 8
                continue
        c = s[i]
        if c < 0x80:
            if c != 32 and c != 10 and c != 9 and c != 13:
                count += 1
                if c == 44 and commas != NULL:
                    commas[0] += 1
            i += 1
            continue
        more = _utf8_sequence(s, i, n)
        if more == 0:
            return -1
        if commas != NULL and c == 0xEF and s[i + 1] == 0xBC and s[i + 2] == 0x8C:  # well-formed: 3 bytes
            commas[0] += 1
        i += more
        count += 1
    return count


cdef Py_ssize_t _nonspace_chars(const unsigned char *s, size_t n) noexcept nogil:
    """:func:`_text_counts` without the commas."""
    return _text_counts(s, n, NULL)


cdef inline bint _stripped(void *node) noexcept nogil:
    cdef uintptr_t tid = _tag_id(node)
    cdef int i
    for i in range(n_stripped):
        if tid == stripped_ids[i]:
            return True
    return False


cdef inline void *_after(void *node, void *root) noexcept nogil:
    """The node after ``node``'s subtree in document order, staying under ``root``; NULL past it."""
    cdef void *nxt
    while node != root:
        nxt = _next(node)
        if nxt != NULL:
            return nxt
        node = _parent(node)
    return NULL


cdef inline size_t _space_at(const unsigned char *s, size_t i, size_t n) noexcept nogil:
    """Byte length of the character at ``s[i]`` when Python's ``str.isspace`` holds for it (the characters
    ``str.split()`` splits on), else 0. ``s`` is valid UTF-8."""
    cdef unsigned char c = s[i], c1, c2
    if c < 0x80:
        return 1 if (9 <= c <= 13 or 28 <= c <= 32) else 0
    if i + 1 >= n:
        return 0
    c1 = s[i + 1]
    if c == 0xC2:
        return 2 if c1 == 0x85 or c1 == 0xA0 else 0  # U+0085, U+00A0
    if i + 2 >= n or c < 0xE1 or c > 0xE3:
        return 0
    c2 = s[i + 2]
    if c == 0xE1:
        return 3 if c1 == 0x9A and c2 == 0x80 else 0  # U+1680
    if c == 0xE3:
        return 3 if c1 == 0x80 and c2 == 0x80 else 0  # U+3000
    if c1 == 0x80:  # U+2000-U+200A, U+2028, U+2029, U+202F
        return 3 if (0x80 <= c2 <= 0x8A or c2 == 0xA8 or c2 == 0xA9 or c2 == 0xAF) else 0
    return 3 if c1 == 0x81 and c2 == 0x9F else 0  # U+205F


cdef size_t _collapse(const unsigned char *s, size_t n, unsigned char *out, bint *lead, bint *trail) noexcept nogil:
    """``" ".join(text.split())`` of valid UTF-8 ``s`` into ``out`` (room for ``n`` bytes); returns its length.
    ``lead``/``trail``: ``text`` starts/ends with whitespace."""
    cdef size_t i = 0, m = 0, w
    cdef bint gap = False
    lead[0] = False
    trail[0] = False
    while i < n:
        w = _space_at(s, i, n)
        if w:
            if m == 0:
                lead[0] = True
            gap = True
            i += w
            continue
        if gap and m:
            out[m] = 32
            m += 1
        gap = False
        out[m] = s[i]
        m += 1
        i += 1
    trail[0] = gap
    return m


cdef Py_ssize_t _str_nonspace(str text):
    """``len(text)`` minus its ASCII spaces, newlines, tabs and carriage returns."""
    cdef Py_ssize_t count = 0
    cdef Py_UCS4 ch
    for ch in text:
        if ch != 32 and ch != 10 and ch != 9 and ch != 13:
            count += 1
    return count


cdef class _Copies:
    """The text copies lexbor made for one page's counts, and the document they live in."""
    cdef void *doc
    cdef size_t kept


cdef enum:
    # bytes of counting copies left to the tree's end before they are freed one by one: freeing each at
    # once costs a tenth of a page's time (lexbor files freed chunks in a search tree); the budget keeps
    # nested lists and tables, which count the same text again at each level, from growing without bound
    KEEP_COPIES = 4 << 20


cdef Py_ssize_t _text_nonspace(void *node, _Copies copies) except -1:
    """:func:`_str_nonspace` of a text node, counted on its UTF-8 bytes where they are valid."""
    cdef size_t n = 0
    cdef Py_ssize_t count
    cdef bint copied
    cdef const unsigned char *raw = _text_bytes(node, &n, &copied)
    if raw == NULL:
        return 0
    count = _nonspace_chars(raw, n)
    if count < 0:
        count = _str_nonspace(_decode(raw, n))
    if copied:
        if copies.kept + n > KEEP_COPIES:
            destroy_text_f(copies.doc, <unsigned char *> raw)
        else:
            copies.kept += n
    return count


cdef Py_ssize_t _chars(void *node, _Copies copies) except -1:
    """Characters of text under ``node``, ASCII whitespace not counted and script/style/template left out,
    as extract_default._chars counts them on the tree it stripped."""
    cdef Py_ssize_t count = 0
    cdef void *cur = _first_child(node)
    while cur != NULL:
        if _type(cur) == NODE_TEXT:
            count += _text_nonspace(cur, copies)
        elif _stripped(cur):
            cur = _after(cur, node)
            continue
        cur = _next_in(cur, node)
    return count


cdef bint _link_heavy(void *node, _Copies copies, double limit) except -1:
    """More than ``limit`` of the text under ``node`` is link text (extract_default._link_heavy)."""
    cdef void *cur = _first_child(node)
    cdef Py_ssize_t link_chars = 0, total
    cdef bint any_link = False
    while cur != NULL:
        if _stripped(cur):
            cur = _after(cur, node)
            continue
        if _tag_id(cur) == TAG_A and _type(cur) == NODE_ELEMENT:
            any_link = True
            link_chars += _chars(cur, copies)
        cur = _next_in(cur, node)
    if not any_link:
        return False
    total = _chars(node, copies)
    if total == 0:
        return False
    return link_chars / <double> total > limit


cdef bint _has_attr_value(void *node, const char *name, size_t name_len, const char *want, size_t want_len,
                          bint ascii_nocase) noexcept nogil:
    cdef size_t n = 0, vn = 0, i
    cdef const unsigned char *an
    cdef const unsigned char *v
    cdef unsigned char c
    cdef void *attr = first_attr_f(node)
    while attr != NULL:
        an = attr_name_f(attr, &n)
        if an != NULL and _is(an, n, name, name_len):
            v = attr_value_f(attr, &vn)
            if v != NULL and vn == want_len:
                if not ascii_nocase:
                    return memcmp(v, want, vn) == 0
                for i in range(vn):
                    c = v[i]
                    if 65 <= c <= 90:
                        c += 32
                    if c != <unsigned char> want[i]:
                        return False
                return True
            return False
        attr = next_attr_f(attr)
    return False


cdef void *_next_in(void *node, void *root) noexcept nogil:
    """The node after ``node`` in document order, staying under ``root``; NULL past its subtree."""
    cdef void *nxt = _first_child(node)
    if nxt != NULL:
        return nxt
    while node != root:
        nxt = _next(node)
        if nxt != NULL:
            return nxt
        node = _parent(node)
    return NULL


cdef bint _has_content_block(void *node) noexcept nogil:
    """``node.css_first(extract_default._CONTENT_SELECTOR)`` is not None (the node itself included)."""
    cdef void *cur = node
    cdef uintptr_t tid
    cdef int i
    while cur != NULL:
        if _type(cur) == NODE_ELEMENT:
            tid = _tag_id(cur)
            for i in range(n_content):
                if tid == content_ids[i]:
                    return True
            if _has_attr_value(cur, content_attr, content_attr_len, content_value, content_value_len, False):
                return True
        cur = _next_in(cur, node)
    return False


cdef bint _has_password_input(void *node) noexcept nogil:
    """``node.css_first(extract_default._LOGIN_SELECTOR)`` is not None."""
    cdef void *cur = node
    while cur != NULL:
        if (_type(cur) == NODE_ELEMENT and _tag_id(cur) == TAG_LOGIN
                and _has_attr_value(cur, login_attr, login_attr_len, login_value, login_value_len, True)):
            return True
        cur = _next_in(cur, node)
    return False


cdef class TagTable:
    """What the walk does with each tag id, for one rule set (static ids in arrays, others per page)."""

    cdef unsigned char known[NTAG]
    cdef signed char kind[NTAG]
    cdef signed char level[NTAG]
    cdef unsigned char flags[NTAG]
    cdef int tag_class[NTAG]  # the decision's class of a static id (the dict ``classes_of`` gives it), else -1
    cdef list names
    cdef dict kinds
    cdef object article_only
    cdef object classes_of

    def __init__(self, rules):
        self.kinds = rules.kinds
        self.article_only = rules.article_only
        self.names = [None] * NTAG
        self.classes_of = None
        for i in range(NTAG):
            self.known[i] = 0

    cdef inline int class_of(self, uintptr_t tid, str name, dict classes) except? -2:
        """``classes.get(name, 0)`` of the element with tag id ``tid`` and name ``name``: looked up once per
        static id (their name never changes), every time for a page's own ids."""
        cdef int c
        if tid >= NTAG:
            return classes.get(name, 0)
        if classes is not self.classes_of:
            for i in range(NTAG):
                self.tag_class[i] = -1
            self.classes_of = classes
        c = self.tag_class[tid]
        if c == -1:
            c = self.tag_class[tid] = classes.get(name, 0)
        return c

    cdef tuple learn(self, void *node, uintptr_t tid, dict dynamic):
        """(kind, level, flags, name) of a tag id not yet in the arrays: described once, then kept in the arrays
        (static ids) or in ``dynamic`` (the page's own ids)."""
        info = dynamic.get(tid) if tid >= NTAG else None
        if info is None:
            info = self.describe(node)
            if tid < NTAG:
                self.known[tid] = 1
                self.kind[tid], self.level[tid], self.flags[tid] = info[0], info[1], info[2]
                self.names[tid] = info[3]
            else:
                dynamic[tid] = info
        return info

    cdef tuple describe(self, void *node):
        """(kind, level, flags, name) of an element."""
        cdef size_t n = 0
        cdef const unsigned char *raw = element_name_f(node, &n)
        if raw == NULL:
            return (0, 0, F_SKIP, None)
        name = _decode(raw, n)
        kind = self.kinds.get(name, 0)
        flags = 0
        if kind == K_SKIP or not name or name[0] == "-" or name in _STRIPPED:
            flags |= F_SKIP
        if name in _NO_ATTR_CHECK:
            flags |= F_NO_CHECK
        if name in self.article_only:
            flags |= F_ARTICLE_ONLY
        if name in _CONTENT_TAGS:
            flags |= F_CONTENT
        if name == _DIV_TAG:
            flags |= F_DIV
        return (kind, _BLOCK_LEVEL.get(name, 0), flags, name)


cdef int _by_id(const void *a, const void *b) noexcept nogil:
    cdef unsigned long long x = (<const unsigned long long *> a)[0], y = (<const unsigned long long *> b)[0]
    return (x > y) - (x < y)


cdef class _Ids:
    """A set of node ids (``mem_id``s) as a sorted C array."""
    cdef unsigned long long *ids
    cdef Py_ssize_t n

    def __cinit__(self, ids):
        cdef Py_ssize_t k = 0
        self.n = len(ids)
        self.ids = <unsigned long long *> malloc((self.n if self.n else 1) * sizeof(unsigned long long))
        if self.ids == NULL:
            raise MemoryError()
        for v in ids:
            self.ids[k] = v
            k += 1
        qsort(self.ids, self.n, sizeof(unsigned long long), _by_id)

    def __dealloc__(self):
        free(self.ids)

    cdef inline bint has(self, unsigned long long key) noexcept nogil:
        cdef Py_ssize_t lo = 0, hi = self.n, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.ids[mid] < key:
                lo = mid + 1
            else:
                hi = mid
        return lo < self.n and self.ids[lo] == key


cdef class _Joined:
    """UTF-8 text joined in a C buffer, handed to a Python list as one string."""
    cdef unsigned char *data
    cdef size_t n, cap

    def __dealloc__(self):
        free(self.data)

    cdef int add(self, const unsigned char *s, size_t k) except -1:
        cdef size_t cap
        cdef unsigned char *p
        if self.n + k > self.cap:
            cap = (self.n + k) * 2 if self.n + k > 128 else 256
            p = <unsigned char *> realloc(self.data, cap)
            if p == NULL:
                raise MemoryError()
            self.data, self.cap = p, cap
        memcpy(self.data + self.n, s, k)
        self.n += k
        return 0

    cdef int out(self, list into) except -1:
        """Append the text joined so far to ``into`` (one str) and start again."""
        if self.n:
            into.append(PyUnicode_DecodeUTF8(<const char *> self.data, self.n, NULL))
            self.n = 0
        return 0


cdef struct Frame:
    void *node
    int level
    bint saved
    bint no_text, in_pre
    int in_article, in_content, in_list, in_main


def walk(body, str page_url, str base, cfg, rules, plan=None):
    """``(texts, images, metadata)`` of the page whose ``<body>`` is the selectolax node ``body``, with the rule
    set ``rules`` (an extract_default ``_Rules``, which keeps this walk's tag table) and the main-content
    decision ``plan`` (an obelics.html.content ``Plan``, or None)."""
    cdef TagTable table = rules.tag_table
    if table is None:
        table = rules.tag_table = TagTable(rules)
    cdef void *root = <void *> <uintptr_t> body.mem_id
    cdef _Copies copies = _Copies()
    copies.doc = root
    while copies.doc != NULL and _type(copies.doc) != NODE_DOCUMENT:
        copies.doc = _parent(copies.doc)
    if copies.doc == NULL:
        raise ValueError("the body is not in a document")
    cdef bint keep_lists = cfg.keep_lists, keep_tables = cfg.keep_tables, noscript_images = cfg.noscript_images
    cdef double density = cfg.max_list_link_density
    cdef double share = cfg.max_boilerplate_text_share
    cdef bint remove_dates = cfg.remove_dates
    cdef dict class_verdicts = rules.class_verdicts
    special_div = rules.special_div
    cdef dict dynamic = {}
    em = _Emitter()
    cdef list buf = em.buf
    cdef int pending = 0, level, kind, flags, verdict, node_type
    cdef bint no_text = False, in_pre = False, skip
    cdef int has_rules
    cdef int in_article = 0, in_content = 0, in_list = 0
    cdef bint has_plan = plan is not None, forced, entering
    cdef bint keep_hidden = not has_plan or cfg.content_keep_hidden
    cdef int in_main = 0 if has_plan else 1
    # the plan's sets as sorted C arrays: an element's membership is a binary search, not a Python int made for
    # each element of the content and looked up in a frozenset
    cdef _Ids roots = _Ids(plan.roots if has_plan else ())
    cdef _Ids ancestors = _Ids(plan.ancestors if has_plan else ())
    cdef _Ids drops = _Ids(plan.drops if has_plan and plan.drops else ())
    cdef unsigned long long key
    cdef Py_ssize_t page_chars = -1
    cdef size_t n = 0, cls_len = 0
    cdef const unsigned char *cls
    cdef uintptr_t tid
    cdef str t, core, name
    cdef tuple info
    cdef Py_ssize_t depth = 0, capacity = 64
    cdef const unsigned char *raw
    cdef unsigned char *cbuf = NULL  # collapsed text of the current text node
    # the text nodes' pieces (break + collapsed text) since the emitter's list was last handed to Python, joined
    # here as UTF-8 and appended to it as one string before any Python step reads or extends it (_text_out)
    cdef _Joined acc = _Joined()
    cdef size_t ccap = 0, m
    cdef bint lead, trail, copied
    cdef Frame *stack = <Frame *> malloc(capacity * sizeof(Frame))
    cdef Frame *frame
    cdef void *node = _first_child(root)
    cdef void *child
    if stack == NULL:
        raise MemoryError()
    try:
        while True:
            if node == NULL:
                if depth == 0:
                    break
                depth -= 1
                frame = &stack[depth]
                if frame.level > pending:
                    pending = frame.level
                if frame.saved:
                    no_text, in_pre = frame.no_text, frame.in_pre
                    in_article, in_content, in_list = frame.in_article, frame.in_content, frame.in_list
                    in_main = frame.in_main
                node = _next(frame.node)
                continue
            node_type = _type(node)
            if node_type == NODE_TEXT:
                if not no_text and in_main:
                    # the node's own bytes; where they are a copy (text_reads), it is left to be freed with
                    # the tree, which is cheaper than freeing it here (lexbor files freed chunks in a search tree)
                    raw = _text_bytes(node, &n, &copied)
                    if raw == NULL:
                        n = 0
                    if not in_pre and _nonspace_chars(raw, n) >= 0:
                        # the branch below on the bytes: whitespace collapsed in C, one string made per node
                        if n > ccap:
                            ccap = n * 2
                            cbuf = <unsigned char *> realloc(cbuf, ccap)
                            if cbuf == NULL:
                                raise MemoryError()
                        m = _collapse(raw, n, cbuf, &lead, &trail)
                        if m == 0:
                            if (buf or acc.n) and pending < 1:
                                pending = 1
                        else:
                            level = 0
                            if buf or acc.n:
                                level = pending
                                if level < 1 and lead:
                                    level = 1
                            acc.add(<const unsigned char *> _sep_bytes[level], _sep_lens[level])
                            acc.add(cbuf, m)
                            pending = 1 if trail else 0
                        node = _next(node)
                        continue
                    t = _decode(raw, n) if n else ""
                    acc.out(buf)
                    if in_pre:
                        pending = _pre_text(t, buf, pending)
                    else:  # bytes lexbor passed through undecoded: the emitter's own step, on the decoded text
                        em.pending = pending
                        em.text(t)
                        pending = em.pending
                node = _next(node)
                continue
            if node_type != NODE_ELEMENT:  # comments, doctype, processing instructions: no text nodes inside
                node = _next(node)
                continue
            tid = _tag_id(node)
            if tid < NTAG and table.known[tid]:
                kind, level, flags = table.kind[tid], table.level[tid], table.flags[tid]
                name = table.names[tid]
            else:
                info = table.learn(node, tid, dynamic)
                kind, level, flags, name = info
            skip = (flags & F_SKIP) != 0
            cls = NULL
            cls_len = 0
            forced = entering = False
            if has_plan and (not skip or kind == K_SKIP):
                key = <unsigned long long> <uintptr_t> node
                if not in_main:
                    if roots.has(key):
                        forced = entering = True
                        skip = False
                    elif ancestors.has(key):
                        forced = True
                        skip = False
                    else:
                        skip = True  # outside the content
                elif drops.n and drops.has(key):
                    skip = True  # boilerplate inside the content
            if not skip and not forced and not (flags & F_NO_CHECK):
                has_rules = _rule_attrs(node, &cls, &cls_len)
                if has_rules:
                    verdict = -1
                    if cls != NULL and cls_len:
                        # the common case: the class value's cached verdict decides, without a dict of the
                        # attributes, when it says boilerplate or when the class is the only rule attribute
                        cls_str = _decode(cls, cls_len)
                        v = class_verdicts.get(cls_str)
                        if v is not None:
                            if v:
                                verdict = v
                            elif has_rules == 1:
                                verdict = 1 if (flags & F_DIV) and special_div and cls_str in special_div else 0
                    if verdict < 0:
                        verdict = _verdict(name, _attributes(node), rules)
                    if verdict:
                        if verdict == 3:
                            # hidden inside an article is paginated or collapsed text that scripts reveal: kept
                            if keep_hidden:
                                verdict = 0 if in_content else 1
                            else:  # with the decision, the content is what shows: hidden blocks go whatever they hold
                                verdict = 4
                        if verdict == 1:
                            # never drop the article, a wrapper around it, or a block with most of the page's text
                            if (flags & F_CONTENT) or _has_content_block(node):
                                verdict = 0
                            else:
                                if page_chars < 0:
                                    page_chars = _chars(root, copies)
                                if page_chars and _chars(node, copies) >= share * page_chars:
                                    verdict = 0
                        if verdict == 2:
                            acc.out(buf)
                            pending = _emit_eod(em, pending)
                        skip = verdict != 0
            if not skip:
                if kind:
                    if kind == K_IMG or kind == K_PICTURE:
                        acc.out(buf)
                        em.pending = pending
                        if kind == K_IMG:
                            _emit_image(em, _attributes(node), page_url, base, cfg)
                        else:
                            _emit_picture(em, node, page_url, base, cfg)
                        buf = em.buf
                        pending = em.pending
                        skip = True
                    elif kind == K_BR:
                        if pending < 2:
                            pending = 2
                        skip = True
                    elif kind == K_LIST:
                        skip = not keep_lists or (not in_list and _link_heavy(node, copies, density))
                    elif kind == K_ITEM:
                        skip = not keep_lists
                    elif kind == K_TABLE:
                        skip = not keep_tables or _link_heavy(node, copies, density)
                        if not skip and _has_password_input(node):
                            # a login box laid out as a table: its labels are not page content
                            if page_chars < 0:
                                page_chars = _chars(root, copies)
                            skip = _chars(node, copies) < share * page_chars
                    elif kind == K_NOSCRIPT:
                        skip = not noscript_images
                elif flags & F_ARTICLE_ONLY:
                    skip = not in_article
                if remove_dates and (flags & F_DIV) and not skip:
                    if cls == NULL and (flags & F_NO_CHECK):
                        _rule_attrs(node, &cls, &cls_len)
                    skip = cls != NULL and _DATE_CLASS in (<const char *> cls)[:cls_len]
                if forced and kind != K_IMG and kind != K_PICTURE and kind != K_BR:
                    skip = False  # a content root or its ancestor: the decision has judged it
            if skip:
                node = _next(node)
                continue
            if level > pending:
                pending = level
            child = _first_child(node)
            if child == NULL:
                node = _next(node)
                continue
            if depth == capacity:
                capacity *= 2
                frame = <Frame *> realloc(stack, capacity * sizeof(Frame))
                if frame == NULL:
                    raise MemoryError()
                stack = frame
            frame = &stack[depth]
            depth += 1
            frame.node = node
            frame.level = level
            frame.saved = kind != 0 or entering
            if frame.saved:
                frame.no_text, frame.in_pre = no_text, in_pre
                frame.in_article, frame.in_content, frame.in_list = in_article, in_content, in_list
                frame.in_main = in_main
                if entering:
                    in_main = 1
                if kind == K_NOSCRIPT:
                    no_text = True
                elif kind == K_PRE:
                    in_pre = True
                elif kind == K_ARTICLE:
                    in_article += 1
                    in_content += 1
                elif kind == K_MAIN:
                    in_content += 1
                elif kind == K_LIST:
                    in_list += 1
            node = child
    finally:
        free(stack)
        free(cbuf)
    acc.out(buf)
    em.pending = pending
    em.flush()
    return em.texts, em.images, em.metadata


cdef _emit_picture(em, void *picture, str page_url, str base, cfg):
    """A ``<picture>``: its ``<source>`` candidates and first ``<img>`` (extract_default._picture_candidates)."""
    cdef list items = []
    cdef void *cur = _first_child(picture)
    cdef size_t n = 0
    cdef const unsigned char *raw
    cdef str name
    while cur != NULL:
        if _type(cur) == NODE_ELEMENT:
            raw = element_name_f(cur, &n)
            if raw != NULL:
                name = _decode(raw, n)
                if name in _PICTURE_PARTS:
                    items.append((name, _attributes(cur)))
        cur = _next_in(cur, picture)
    img, extra = _picture_candidates(items)
    if img is not None or extra:
        _emit_image(em, img if img is not None else _attributes(picture), page_url, base, cfg, extra)


cdef class _Grow:
    """Growable int32 columns of the page statistics, one row per element."""
    cdef int *data[9]
    cdef unsigned long long *ids
    cdef long long *score  # the containers' scores, filled by _sums_and_scores
    cdef Py_ssize_t n, cap

    def __cinit__(self):
        self.n = 0
        self.cap = 0
        self.ids = NULL
        self.score = NULL
        for k in range(9):
            self.data[k] = NULL

    def __dealloc__(self):
        free(self.ids)
        free(self.score)
        for k in range(9):
            free(self.data[k])

    cdef int grow(self) except -1:
        cdef Py_ssize_t cap = self.cap * 2 if self.cap else 256
        cdef void *p
        for k in range(9):
            p = realloc(self.data[k], cap * sizeof(int))
            if p == NULL:
                raise MemoryError()
            self.data[k] = <int *> p
        p = realloc(self.ids, cap * sizeof(unsigned long long))
        if p == NULL:
            raise MemoryError()
        self.ids = <unsigned long long *> p
        self.cap = cap
        return 0

    cdef bytes column(self, int k):
        return (<char *> self.data[k])[:self.n * sizeof(int)]


# columns of _Grow
cdef enum:
    C_PARENT = 0
    C_END = 1
    C_TEXT = 2
    C_LINK = 3
    C_OWN = 4
    C_COMMAS = 5
    C_IMAGES = 6
    C_KIND = 7
    C_UNDER = 8  # commas of the text blocks under an element, filled after the walk


def page_stats(body, rules, dict classes, frozenset transparent, int min_block_chars):
    """``(columns, scores, ids, tags)`` of the main-content decision's page statistics (obelics.html.content):
    the int32 columns parent, end, chars, links, own, commas, images, kind, commas_under one after the other
    as bytes (chars, links, images and commas_under summed over subtrees), the containers' int64 scores
    (content.score_blocks), the elements' ``mem_id``s as uint64 bytes and their names;
    ``extract_default._page_stats_python`` counts the same on selectolax nodes. ``classes``: name -> kind
    (0 inline, else a text block); ``transparent``: removed tags counted all the same."""
    cdef list tags = ["body"]
    cdef _Grow g = _gather(body, rules, classes, transparent, min_block_chars, tags)
    columns = b"".join([g.column(k) for k in range(9)])
    return (columns, (<char *> g.score)[:g.n * sizeof(long long)], (<char *> g.ids)[:g.n * sizeof(unsigned long long)],
            tags)


cdef _Grow _gather(body, rules, dict classes, frozenset transparent, int min_block_chars, list tags):
    """The page statistics of :func:`page_stats` in a :class:`_Grow` (scores included); element names
    appended to ``tags``."""
    cdef TagTable table = rules.tag_table
    if table is None:
        table = rules.tag_table = TagTable(rules)
    cdef void *root = <void *> <uintptr_t> body.mem_id
    cdef _Grow g = _Grow()
    cdef dict dynamic = {}
    cdef int tag_class
    cdef Py_ssize_t depth = 0, capacity = 64, i, cur = 0, o
    cdef int *stack_el = <int *> malloc(capacity * sizeof(int))
    cdef void **stack_node = <void **> malloc(capacity * sizeof(void *))
    cdef int *stack_link = <int *> malloc(capacity * sizeof(int))
    cdef int *owner = NULL
    cdef int in_link = 0, kind, flags, node_type
    cdef Py_ssize_t c, commas
    cdef size_t n = 0
    cdef const unsigned char *raw
    cdef bint copied
    cdef uintptr_t tid
    cdef tuple info
    cdef str name, t
    cdef void *node
    cdef void *child
    if stack_el == NULL or stack_node == NULL or stack_link == NULL:
        free(stack_el)
        free(stack_node)
        free(stack_link)
        raise MemoryError()
    try:
        g.grow()
        owner = <int *> malloc(g.cap * sizeof(int))
        if owner == NULL:
            raise MemoryError()
        g.data[C_PARENT][0] = -1
        for k in range(1, 9):
            g.data[k][0] = 0
        g.data[C_KIND][0] = classes.get("body", 0)
        g.ids[0] = <unsigned long long> <uintptr_t> root
        owner[0] = 0
        g.n = 1
        node = _first_child(root)
        while True:
            if node == NULL:
                if depth == 0:
                    break
                depth -= 1
                i = stack_el[depth]
                g.data[C_END][i] = g.n
                cur = g.data[C_PARENT][i]
                in_link = stack_link[depth]
                node = _next(stack_node[depth])
                continue
            node_type = _type(node)
            if node_type == NODE_TEXT:
                raw = _text_bytes(node, &n, &copied)
                if raw != NULL and n:
                    commas = 0
                    c = _text_counts(raw, n, &commas)  # characters and commas in one pass
                    if c < 0:
                        t = _decode(raw, n)
                        c = _str_nonspace(t)
                        commas = t.count(",") + t.count("，")
                    if c:
                        g.data[C_TEXT][cur] += c
                        if in_link:
                            g.data[C_LINK][cur] += c
                        o = owner[cur]
                        g.data[C_OWN][o] += c
                        g.data[C_COMMAS][o] += commas
                node = _next(node)
                continue
            if node_type != NODE_ELEMENT:
                node = _next(node)
                continue
            tid = _tag_id(node)
            if tid < NTAG and table.known[tid]:
                kind, flags = table.kind[tid], table.flags[tid]
                name = table.names[tid]
            else:
                info = table.learn(node, tid, dynamic)
                kind, flags, name = info[0], info[2], info[3]
            if kind == K_NOSCRIPT or ((flags & F_SKIP) and not (kind == K_SKIP and name in transparent)):
                node = _next(node)
                continue
            if g.n == g.cap:
                g.grow()
                owner = <int *> realloc(owner, g.cap * sizeof(int))
                if owner == NULL:
                    raise MemoryError()
            i = g.n
            g.n += 1
            g.data[C_PARENT][i] = cur
            g.data[C_END][i] = i + 1
            g.data[C_TEXT][i] = 0
            g.data[C_LINK][i] = 0
            g.data[C_OWN][i] = 0
            g.data[C_COMMAS][i] = 0
            g.data[C_IMAGES][i] = 1 if (kind == K_IMG or kind == K_PICTURE) else 0
            g.ids[i] = <unsigned long long> <uintptr_t> node
            tags.append(name)
            tag_class = table.class_of(tid, name, classes)
            g.data[C_KIND][i] = tag_class
            owner[i] = i if tag_class else owner[cur]
            child = _first_child(node)
            if kind == K_IMG or kind == K_PICTURE or child == NULL:
                node = _next(node)
                continue
            if depth == capacity:
                capacity *= 2
                stack_el = <int *> realloc(stack_el, capacity * sizeof(int))
                stack_node = <void **> realloc(stack_node, capacity * sizeof(void *))
                stack_link = <int *> realloc(stack_link, capacity * sizeof(int))
                if stack_el == NULL or stack_node == NULL or stack_link == NULL:
                    raise MemoryError()
            stack_el[depth] = i
            stack_node[depth] = node
            stack_link[depth] = in_link
            depth += 1
            cur = i
            if tid == TAG_A:
                in_link = 1
            node = child
        g.data[C_END][0] = g.n
    finally:
        free(stack_el)
        free(stack_node)
        free(stack_link)
        free(owner)
    _sums_and_scores(g, min_block_chars)
    return g


cdef long long LEVEL_SHARE[5]
LEVEL_SHARE[:] = [36, 18, 6, 4, 3]  # content.LEVEL_SHARE: 1, 1/2, 1/6, 1/9, 1/12 of a block's score, times 36


cdef int _sums_and_scores(_Grow g, int min_block_chars) except -1:
    """Sum chars, links, images and commas over subtrees (children come after their parent), then each text
    block's score onto its container and four levels above: content.score_blocks, in C."""
    cdef Py_ssize_t n = g.n, i, level
    cdef int *parent = g.data[C_PARENT]
    cdef int *chars = g.data[C_TEXT]
    cdef int *links = g.data[C_LINK]
    cdef int *images = g.data[C_IMAGES]
    cdef int *own = g.data[C_OWN]
    cdef int *commas = g.data[C_COMMAS]
    cdef int *under = g.data[C_UNDER]
    cdef int *kind = g.data[C_KIND]
    cdef int p, a, m
    cdef long long bs
    cdef long long *score = <long long *> calloc(n if n else 1, sizeof(long long))
    cdef unsigned char *has_block_child = <unsigned char *> malloc(n if n else 1)
    if has_block_child == NULL or score == NULL:
        free(score)
        free(has_block_child)
        raise MemoryError()
    free(g.score)
    g.score = score
    for i in range(n):
        under[i] = commas[i]
        has_block_child[i] = 0
    for i in range(n - 1, 0, -1):
        p = parent[i]
        chars[p] += chars[i]
        links[p] += links[i]
        images[p] += images[i]
        under[p] += under[i]
        if kind[i] > 0:
            has_block_child[p] = 1
    for i in range(n):
        if own[i] < min_block_chars:
            continue
        m = own[i] // 100
        bs = 1 + commas[i] + (m if m < 3 else 3)
        a = i if (has_block_child[i] and own[i] * 2 >= chars[i]) else parent[i]
        for level in range(5):
            if a < 0:
                break
            score[a] += bs * LEVEL_SHARE[level]
            a = parent[a]
    free(has_block_child)
    return 0


cdef str _NO_NAMES = " "  # _node_names of an element without class and id


def node_names(unsigned long long node_id):
    """The class and id values of the element ``node_id`` (a ``mem_id``), joined with a space."""
    return _node_names(<void *> <uintptr_t> node_id)


cdef str _node_names(void *node):
    cdef size_t n = 0
    cdef const unsigned char *v = _attr_value(node, "class", 5, &n)
    cls = _decode(v, n) if v != NULL else ""
    v = _attr_value(node, "id", 2, &n)
    ident = _decode(v, n) if v != NULL else ""
    return cls + " " + ident


# ---- the main-content decision (obelics.html.content.decide), in C over the _Grow columns ----

ctypedef struct Ranked:
    double key
    int i


cdef int _by_key(const void *a, const void *b) noexcept nogil:
    """Descending key, then ascending index: numpy's stable argsort of ``-key`` and ``sorted(key=(-v, i))``."""
    cdef const Ranked *x = <const Ranked *> a
    cdef const Ranked *y = <const Ranked *> b
    if x.key > y.key:
        return -1
    if x.key < y.key:
        return 1
    return (x.i > y.i) - (x.i < y.i)


cdef enum:
    SCALE_C = 36  # content.SCALE


cdef class _Decision:
    """One page's decision over the columns of a :class:`_Grow`: content.decide written with C arrays, the
    class/id words read only for the elements it compares (their weights cached by name across pages)."""

    cdef _Grow g
    cdef Py_ssize_t n
    cdef int *parent
    cdef int *end
    cdef int *chars
    cdef int *links
    cdef int *own
    cdef int *under
    cdef int *images
    cdef int *kind
    cdef long long *score
    cdef double *val
    cdef int *wt
    cdef signed char *known  # bit 1: val set, bit 2: wt set
    cdef signed char *section_mark  # -1 unknown, else in or under a comment section
    cdef int *work  # scratch: the chain up to a known element, the roots, the drops
    cdef list tags
    cdef dict by_name, tag_bonus
    cdef object patterns, weight_fn, section

    def __dealloc__(self):
        free(self.val)
        free(self.wt)
        free(self.known)
        free(self.section_mark)
        free(self.work)

    cdef int setup(self, _Grow g, list tags, tuple words) except -1:
        cdef Py_ssize_t n = g.n, i
        self.g = g
        self.n = n
        self.parent, self.end = g.data[C_PARENT], g.data[C_END]
        self.chars, self.links, self.own = g.data[C_TEXT], g.data[C_LINK], g.data[C_OWN]
        self.under, self.images, self.kind = g.data[C_UNDER], g.data[C_IMAGES], g.data[C_KIND]
        self.score = g.score
        self.tags = tags
        self.patterns, self.by_name, self.weight_fn, self.tag_bonus = words
        self.section = self.patterns[2]
        self.val = <double *> malloc(n * sizeof(double))
        self.wt = <int *> malloc(n * sizeof(int))
        self.known = <signed char *> calloc(n, 1)
        self.section_mark = <signed char *> malloc(n)
        self.work = <int *> malloc(3 * n * sizeof(int))
        if self.val == NULL or self.wt == NULL or self.known == NULL or self.section_mark == NULL or self.work == NULL:
            raise MemoryError()
        for i in range(n):
            self.section_mark[i] = -1
        return 0

    cdef inline double density(self, Py_ssize_t i) noexcept:
        return self.links[i] / <double> self.chars[i] if self.chars[i] > 0 else 0.0

    cdef inline bint nested(self, Py_ssize_t a, Py_ssize_t b) noexcept:
        """One of ``a``, ``b`` is inside the other."""
        return (a < b < self.end[a]) or (b < a < self.end[b])

    cdef str names(self, Py_ssize_t i):
        return _node_names(<void *> <uintptr_t> self.g.ids[i])

    cdef int weight(self, Py_ssize_t i) except? -999999:
        cdef object w
        cdef void *node
        cdef size_t n = 0
        if not (self.known[i] & 2):
            node = <void *> <uintptr_t> self.g.ids[i]
            if _attr_value(node, "class", 5, &n) == NULL and _attr_value(node, "id", 2, &n) == NULL:
                name = _NO_NAMES  # the common case inside the content: no string made
            else:
                name = _node_names(node)
            w = self.by_name.get(name)
            if w is None:
                w = self.by_name[name] = self.weight_fn(name, self.patterns)
            self.wt[i] = w
            self.known[i] |= 2
        return self.wt[i]

    cdef double value(self, Py_ssize_t i) except? -1e300:
        """content.decide's value(): the score with tag and class/id evidence, times the non-link share."""
        cdef long long s, c
        cdef double v
        if self.known[i] & 1:
            return self.val[i]
        s = self.score[i]
        if s <= 0:
            v = 0.0
        else:
            c = self.chars[i]
            s += SCALE_C * (<int> self.tag_bonus.get(self.tags[i], 0) + self.weight(i))
            v = (<double> (s * (c - self.links[i]))) / <double> c if c else <double> s
        self.val[i] = v
        self.known[i] |= 1
        return v

    cdef int in_section(self, Py_ssize_t i) except -1:
        """``i`` is a comment section or inside one (content.decide's under_boilerplate)."""
        cdef int *chain = self.work
        cdef Py_ssize_t k = 0
        cdef int hit
        while i >= 0 and self.section_mark[i] < 0:
            chain[k] = i
            k += 1
            i = self.parent[i]
        hit = self.section_mark[i] if i >= 0 else 0
        while k > 0:
            k -= 1
            i = chain[k]
            if not hit:
                hit = self.section.search(self.names(i).lower()) is not None
            self.section_mark[i] = hit
        return hit

    cdef object decide(self, cfg):
        cdef Py_ssize_t n = self.n, i, k, ncand = 0, nshort, nrank, limit, top, a, p, best_a, nkept, nd, s
        cdef double best, top_value, v, last, threshold, share
        cdef long long total
        cdef bint found
        cdef Ranked *cand = NULL
        cdef Ranked *rank = NULL
        if n < 2:
            return None
        for i in range(n):
            if self.score[i] > 0:
                ncand += 1
        if ncand == 0:
            return None
        cand = <Ranked *> malloc(ncand * sizeof(Ranked))
        rank = <Ranked *> malloc(ncand * sizeof(Ranked))
        if cand == NULL or rank == NULL:
            free(cand)
            free(rank)
            raise MemoryError()
        try:
            k = 0
            for i in range(n):
                if self.score[i] > 0:
                    cand[k].key = self.score[i] * (1.0 - self.density(i))
                    cand[k].i = i
                    k += 1
            qsort(cand, ncand, sizeof(Ranked), _by_key)
            limit = min(<Py_ssize_t> cfg.content_candidates, ncand)
            # tag and class/id words move a score by at most 30 points: only the best by score alone can win
            best = cand[0].key
            nshort = 0
            while nshort < limit and cand[nshort].key + 60 * SCALE_C >= best:
                nshort += 1
            # ...and only those that can reach half the best value matter below
            top_value = 0.0
            nrank = 0
            for k in range(nshort):
                if cand[k].key + 30 * SCALE_C < 0.5 * top_value:
                    break
                v = self.value(cand[k].i)
                rank[nrank].key = v
                rank[nrank].i = cand[k].i
                nrank += 1
                if v > top_value:
                    top_value = v
            qsort(rank, nrank, sizeof(Ranked), _by_key)
            # a comment section, or a container in one, is not the article, however much text it has
            if self.section is not None and self.in_section(rank[0].i):
                for k in range(nshort):
                    rank[k].key = self.value(cand[k].i)
                    rank[k].i = cand[k].i
                qsort(rank, nshort, sizeof(Ranked), _by_key)
                nrank = 0
                for k in range(min(12, nshort)):
                    if not self.in_section(rank[k].i):
                        rank[nrank] = rank[k]
                        nrank += 1
                if nrank == 0:
                    for k in range(nshort):
                        rank[k].key = self.value(cand[k].i)
                        rank[k].i = cand[k].i
                    qsort(rank, nshort, sizeof(Ranked), _by_key)
                    nrank = nshort
            top = rank[0].i
            # a close second holding several times the prose (the body beside a popup named "content") wins
            for k in range(1, min(8, nrank)):
                i = rank[k].i
                if self.value(i) < 0.75 * self.value(top):
                    break
                if (<long long> self.chars[i] - self.links[i] >= 4 * (<long long> self.chars[top] - self.links[top])
                        and not self.nested(i, top)):
                    top = i
                    break
            top = self.move_up(top, rank, nrank, cfg)
            if top == 0:
                return None  # the whole body: no decision
            return self.plan(top, self.value(rank[0].i), cfg)
        finally:
            free(cand)
            free(rank)

    cdef Py_ssize_t move_up(self, Py_ssize_t top, Ranked *rank, Py_ssize_t nrank, cfg) except -1:
        """content._move_up."""
        cdef Py_ssize_t k, i, a, p, best_a = -1, nparts = 0
        cdef Py_ssize_t parts[11]
        cdef double top_value, best, last, v, share = cfg.content_parts_share
        cdef long long total
        cdef bint any_inside
        name = self.names(top)
        if name.strip():
            top_value = self.value(top)
            for k in range(1, min(12, nrank)):
                i = rank[k].i
                if self.value(i) >= 0.5 * top_value and not self.nested(i, top) and self.names(i) == name:
                    parts[nparts] = i
                    nparts += 1
            if nparts:
                # the highest ancestor where the parts are at least half of the text
                a = self.parent[top]
                while a >= 0 and a != 0:
                    total = self.chars[top]
                    any_inside = False
                    for k in range(nparts):
                        if a < parts[k] < self.end[a]:
                            any_inside = True
                            total += self.chars[parts[k]]
                    if any_inside and total >= share * self.chars[a]:
                        best_a = a
                    a = self.parent[a]
                if best_a >= 0:
                    top = best_a
        best = last = self.value(top)
        p = self.parent[top]
        while p > 0:
            v = self.value(p)
            if v <= 0:
                p = self.parent[p]
                continue
            if v < last / 3:
                break
            if v > best:
                top = p
                break
            last = v
            p = self.parent[p]
        # an only child (no element siblings) stands for its parent
        while top > 0:
            p = self.parent[top]
            if p <= 0 or not (self.end[top] == self.end[p] and top == p + 1):
                break
            top = p
        return top

    cdef object plan(self, Py_ssize_t top, double best_value, cfg):
        """The roots (top and its siblings), their ancestors and the drops inside, as mem_id frozensets."""
        cdef int *kept = self.work + self.n
        cdef int *drops = self.work + 2 * self.n
        cdef Py_ssize_t nkept = 0, ndrops, ninner, p, s, r, i, k, stop, first, last
        cdef double top_value, threshold, v, c
        cdef double sibling_share = cfg.content_sibling_share
        cdef int sibling_chars = cfg.content_sibling_chars
        cdef bint check_section = self.section is not None
        cdef unsigned long long *ids = self.g.ids
        p = self.parent[top]
        # content._with_siblings
        top_value = max(self.value(top), best_value)
        threshold = max(10.0 * SCALE_C, top_value * 0.2)
        top_name = self.names(top).split(" ")[0]
        s = p + 1
        while s < self.end[p]:
            if s == top:
                kept[nkept] = s
                nkept += 1
            elif not (check_section and self.in_section(s)):
                v = self.value(s)
                if top_name and self.names(s).split(" ")[0] == top_name:
                    v += top_value * 0.2
                if v >= threshold * sibling_share:
                    kept[nkept] = s
                    nkept += 1
                elif self.weight(s) >= 0:
                    c = self.chars[s]
                    if c > sibling_chars and self.density(s) < 0.25 and self.own[s] > 0.5 * c:
                        kept[nkept] = s  # a prose paragraph beside the body
                        nkept += 1
                    elif (self.images[s] and c < 200 and self.density(s) == 0
                          and (self.end[s] == top or (nkept and self.end[kept[nkept - 1]] == s))):
                        kept[nkept] = s  # a figure or lead image beside the body, with its caption
                        nkept += 1
            s = self.end[s]
        ninner = self.inner_drops(kept, nkept, drops, cfg)
        ndrops = ninner + self.edge_drops(kept, nkept, drops, ninner, cfg)
        ancestors = set()
        i = self.parent[kept[0]]
        while i >= 0:
            ancestors.add(ids[i])
            i = self.parent[i]
        return (frozenset([ids[kept[k]] for k in range(nkept)]), frozenset(ancestors),
                frozenset([ids[drops[k]] for k in range(ndrops)]))

    cdef Py_ssize_t inner_drops(self, int *kept, Py_ssize_t nkept, int *drops, cfg) except -1:
        """content._inner_drops: containers and link lines inside the roots that are boilerplate."""
        cdef double max_density = cfg.content_max_link_density, line_density = cfg.content_link_line_density
        cdef long long line_chars = cfg.content_link_line_chars, c, o
        cdef Py_ssize_t k, i, nd = 0
        cdef double d
        cdef bint linky, line, named, boxes
        cdef long long covered
        for k in range(nkept):
            # containers named as boilerplate go unless such names cover half of the root's text (the site's
            # own vocabulary: a page builder calling every block a "widget")
            covered = 0
            i = kept[k] + 1
            while i < self.end[kept[k]]:
                if self.kind[i] == CONTAINER_KIND and self.chars[i] > 0 and self.weight(i) < 0:
                    covered += self.chars[i]
                    i = self.end[i]
                    continue
                i += 1
            boxes = 2 * covered < self.chars[kept[k]]
            i = kept[k] + 1
            while i < self.end[kept[k]]:
                c = self.chars[i]
                o = self.own[i]
                d = self.density(i)
                named = self.kind[i] == CONTAINER_KIND and c > 0 and self.under[i] < 10
                linky = named and d > max_density
                line = o > 0 and o * 10 >= c * 9 and d >= line_density and c < line_chars
                if linky or line or named:
                    if linky and d <= 0.5 and self.weight(i) >= 25:
                        pass  # a content container by name with a few links: kept
                    elif not (linky or line) and (not boxes or self.weight(i) >= 0):
                        pass  # little prose, but not a box named as boilerplate
                    else:
                        drops[nd] = i
                        nd += 1
                        i = self.end[i]
                        continue
                i += 1
        return nd

    cdef Py_ssize_t edge_drops(self, int *kept, Py_ssize_t nkept, int *drops, Py_ssize_t ninner, cfg) except -1:
        """content._edge_drops: short leaf blocks before the first prose block and after the last one,
        appended to ``drops`` after its ``ninner`` entries."""
        cdef long long good_chars = cfg.content_good_chars, tail_chars = cfg.content_tail_chars
        cdef Py_ssize_t k, i, d, first = -1, last = -1, nd = ninner, p
        # the first and last prose block inside the roots, drops left out
        for k in range(nkept):
            i = kept[k]
            d = 0
            while i < self.end[kept[k]]:
                while d < ninner and drops[d] < i:
                    d += 1
                if d < ninner and drops[d] == i:
                    i = self.end[i]
                    continue
                if (self.own[i] > 0 and self.own[i] >= good_chars and self.density(i) < 0.3
                        and self.kind[i] != HEADING_KIND):
                    if first < 0:
                        first = i
                    last = i
                i += 1
        if first < 0:
            return 0
        for k in range(nkept):
            i = kept[k]
            d = 0
            while i < self.end[kept[k]]:
                while d < ninner and drops[d] < i:
                    d += 1
                if d < ninner and drops[d] == i:
                    i = self.end[i]
                    continue
                if i >= first and i <= last:
                    i += 1
                    continue
                p = self.parent[i]
                if (self.own[i] > 0 and self.own[i] == self.chars[i] and self.images[i] == 0
                        and self.images[p if p > 0 else 0] == 0 and i != kept[k]
                        and (i < first or self.own[i] < tail_chars)):
                    drops[nd] = i
                    nd += 1
                i += 1
        return nd - ninner


cdef enum:
    CONTAINER_KIND = 2  # content.CONTAINER
    HEADING_KIND = 3  # content.HEADING


def decide(body, rules, dict classes, frozenset transparent, int min_block_chars, cfg, tuple words):
    """The main-content decision of the page whose ``<body>`` is ``body`` (content.decide on the statistics of
    :func:`page_stats`, in C): ``(roots, ancestors, drops)`` as frozensets of ``mem_id``s, or None. ``words``:
    ``(patterns, weights by name, weight function, tag bonus)`` of content.name_words."""
    cdef list tags = ["body"]
    cdef _Grow g = _gather(body, rules, classes, transparent, min_block_chars, tags)
    cdef _Decision d = _Decision()
    d.setup(g, tags, words)
    return d.decide(cfg)


# -- the page budget's nesting-depth estimate (obelics.budget.estimated_depth, in C) -----------------------
cdef enum:
    MAX_NO_DEPTH = 128  # names in the table
    NAME_ROOM = 16  # bytes of a name in the table; a longer tag name is never in it

cdef unsigned char _nd_names[MAX_NO_DEPTH][NAME_ROOM]
cdef size_t _nd_lens[MAX_NO_DEPTH]
cdef int _nd_count = 0
cdef object _nd_set = None  # the frozenset the table was made from


cdef inline bint _letter(unsigned char c) noexcept nogil:
    return (c | 32) >= 97 and (c | 32) <= 122


# the table's names sorted by (length, first letter): those of a length and first letter are [lo, hi), so a tag
# is compared with the one or two names it could be, not with every name (1.44 -> 0.34 ms on a 640 KB page)
cdef unsigned char _nd_lo[NAME_ROOM][26]
cdef unsigned char _nd_hi[NAME_ROOM][26]


cdef int _nd_table(frozenset names) except -1:
    global _nd_count, _nd_set
    cdef bytes b
    cdef int k = 0, c
    cdef size_t j
    for j in range(NAME_ROOM):
        for c in range(26):
            _nd_lo[j][c] = _nd_hi[j][c] = 0
    table = sorted(name.lower().encode("ascii") for name in names)
    table.sort(key=lambda b: (len(b), b[:1]))
    for b in table:
        if len(b) >= NAME_ROOM or k >= MAX_NO_DEPTH or not (97 <= b[0] <= 122):
            raise ValueError(f"tag depth table: {b!r} does not fit")
        for j in range(len(b)):
            _nd_names[k][j] = b[j]
        _nd_lens[k] = len(b)
        c = b[0] - 97
        if _nd_lo[len(b)][c] == _nd_hi[len(b)][c]:
            _nd_lo[len(b)][c] = k
        _nd_hi[len(b)][c] = k + 1
        k += 1
    _nd_count = k
    _nd_set = names
    return 0


def tag_depth(const unsigned char[::1] html, frozenset no_depth):
    """:func:`obelics.budget.estimated_depth` of UTF-8 (or any ASCII-compatible) bytes: the same matches of
    ``<(/?)([A-Za-z][A-Za-z0-9]*)``, names in ``no_depth`` (lower case) skipped, one pass in C instead of a
    Python step per tag (a page with 100,000 tags: ~20 ms in Python)."""
    if no_depth is not _nd_set:
        _nd_table(no_depth)
    cdef const unsigned char *s = &html[0] if html.shape[0] else NULL
    cdef size_t n = html.shape[0], i = 0, j, start, length
    cdef const unsigned char *p
    cdef unsigned char low[NAME_ROOM]
    cdef long depth = 0, deepest = 0
    cdef bint close, skip
    cdef int k
    with nogil:
        while i < n:
            p = <const unsigned char *> memchr(s + i, 60, n - i)  # '<'
            if p == NULL:
                break
            i = <size_t> (p - s) + 1
            close = i < n and s[i] == 47  # '/'
            start = i + 1 if close else i
            if start >= n or not _letter(s[start]):
                continue  # no tag here: the search goes on after the '<'
            j = start + 1
            while j < n and (_letter(s[j]) or (s[j] >= 48 and s[j] <= 57)):
                j += 1
            length = j - start
            i = j
            skip = False
            if length < NAME_ROOM:
                for k in range(<int> length):
                    low[k] = s[start + k] | 32 if _letter(s[start + k]) else s[start + k]
                for k in range(_nd_lo[length][low[0] - 97], _nd_hi[length][low[0] - 97]):
                    if memcmp(_nd_names[k], low, length) == 0:
                        skip = True
                        break
            if skip:
                continue
            if close:
                if depth:
                    depth -= 1
            else:
                depth += 1
                if depth > deepest:
                    deepest = depth
    return deepest


# -- the page budget's size counts (obelics.budget.PageBudget.check_size, in C) ---------------------------
def tag_counts(const unsigned char[::1] html):
    """``(html.count(b"<"), html.count(b"</"))`` in one pass that the compiler vectorises: CPython's ``bytes.count``
    of one byte goes a byte at a time, and the two counts were ~0.07 CPU ms on an average page, more than the
    rare depth scans they guard. (``"</"`` cannot overlap itself, so these are the same counts.) The counts are
    summed in bytes over blocks of 240, one byte a lane, and added up after each block: summed in ``size_t``
    the compiler widened every lane four times a byte (0.030-0.064 -> 0.003 CPU ms for the 48 KB average page of the bench unit, a throwaway timing)."""
    cdef const unsigned char *s = &html[0] if html.shape[0] else NULL
    cdef size_t n = html.shape[0], i = 0, j, m
    cdef size_t lt = 0, close = 0
    cdef unsigned char a, b
    with nogil:
        while i + 1 < n:  # s[i + j + 1] is read: the last byte is counted after the loop
            m = n - 1 - i
            if m > 240:
                m = 240
            a = 0
            b = 0
            for j in range(m):
                a += <unsigned char>(s[i + j] == 60)  # '<'
                b += <unsigned char>((s[i + j] == 60) & (s[i + j + 1] == 47))  # '</'
            lt += a
            close += b
            i += m
        if n:
            lt += s[n - 1] == 60
    return lt, close


# -- where a `<meta ... name` regex can match (filters.optout.stage's <meta> hint, in C) ----------------------
cdef inline bint _meta_name_at(const unsigned char *s, Py_ssize_t p, Py_ssize_t end, Py_ssize_t within) noexcept nogil:
    """``s[p:p + 5]`` is ``<meta`` (any case) and ``name`` (any case) starts at ``p + 5 + k``, ``k <= within``,
    with no ``>`` before it, ending by ``end``."""
    cdef Py_ssize_t q, last
    if p + 5 > end or s[p] != 60 or (s[p + 1] | 32) != 109 or (s[p + 2] | 32) != 101 or (s[p + 3] | 32) != 116 \
            or (s[p + 4] | 32) != 97:
        return False
    q = p + 5
    last = q + within
    while q <= last and q + 4 <= end:
        if s[q] == 62:  # '>': [^>] cannot pass it
            return False
        if (s[q] | 32) == 110 and (s[q + 1] | 32) == 97 and (s[q + 2] | 32) == 109 and (s[q + 3] | 32) == 101:
            return True
        q += 1
    return False


cdef Py_ssize_t _meta_name_candidate(const unsigned char *s, Py_ssize_t p, Py_ssize_t end,
                                     Py_ssize_t within) noexcept nogil:
    """The first ``p`` of :func:`meta_name_candidate`: blocks of 240 bytes are first tested for a ``<`` followed by
    ``m``/``M`` (one byte a lane, which the compiler vectorises, as :func:`tag_counts`); only a block with one is
    looked at byte by byte. (A ``memchr`` for ``<`` stopped at each of the ~1,400 tags of a 48 KB page.)"""
    cdef Py_ssize_t m, j
    cdef unsigned char a
    while p + 5 <= end:
        m = end - 1 - p  # s[p + j + 1] is read; a match needs p + 5 <= end, so the last 4 bytes start none
        if m > 240:
            m = 240
        a = 0
        for j in range(m):
            a |= (s[p + j] == 60) & ((s[p + j + 1] | 32) == 109)
        if a:
            for j in range(m):
                if _meta_name_at(s, p + j, end, within):
                    return p + j
        p += m
    return -1


def meta_name_candidate(const unsigned char[::1] data, Py_ssize_t start, Py_ssize_t end, Py_ssize_t within):
    """The first position ``p >= start`` where a bytes regex beginning ``<meta[^>]{0,within}name`` under ``re.I``
    can match inside ``data[:end]``: ``data[p:p + 5]`` is ``<meta`` in any ASCII case and ``name`` (any case)
    starts at ``p + 5 + k`` for some ``k <= within``, with no ``>`` before it and ending by ``end``; -1 if there is
    none. A necessary condition only: the caller tries its regex at these positions (``match``), which gives
    what ``search`` gives, without the regex engine stepping through every byte of the page case-folded
    (0.033 CPU ms of the 48 KB average bench page). ``| 32`` maps to these lower-case letters exactly their
    two ASCII cases."""
    cdef Py_ssize_t n = data.shape[0], r
    if end > n:
        end = n
    if start < 0:
        start = 0
    if n == 0:
        return -1
    with nogil:
        r = _meta_name_candidate(&data[0], start, end, within)
    return r


# -- UTF-8 validity of a page (obelics.extract._default_input) --------------------------------------------
cdef bint _utf8_valid(const unsigned char *s, size_t n) noexcept nogil:
    cdef size_t i = 0
    cdef uint64_t w
    cdef unsigned char c
    cdef int more
    while i < n:
        if i + 8 <= n:
            memcpy(&w, s + i, 8)
            if (w & 0x8080808080808080ULL) == 0:  # eight ASCII bytes
                i += 8
                continue
        c = s[i]
        if c < 0x80:
            i += 1
            continue
        more = _utf8_sequence(s, i, n)
        if more == 0:
            return False
        i += more
    return True


def utf8_valid(const unsigned char[::1] data):
    """Whether ``bytes(data).decode("utf-8")`` succeeds, without making the str: eight ASCII bytes at a time,
    else one sequence at a time by Unicode's well-formed table (strict UTF-8: no surrogates, overlong forms or
    code points over U+10FFFF, as Python's codec). Decoding a page only to test it was ~0.03-0.04 CPU ms of
    an average page."""
    cdef const unsigned char *s = &data[0] if data.shape[0] else NULL
    cdef size_t n = data.shape[0]
    cdef bint ok
    with nogil:
        ok = _utf8_valid(s, n)
    return ok


# -- whitespace-separated word counts (the report's flow counts) ------------------------------------------
cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void *PyUnicode_DATA(object o)
    Py_UCS4 PyUnicode_READ(int kind, void *data, Py_ssize_t index) nogil
    bint Py_UNICODE_ISSPACE(Py_UCS4 ch) nogil


def word_count(str text):
    """``len(text.split())`` without making the words: runs of characters that are not whitespace by
    ``str.split``'s own test (``Py_UNICODE_ISSPACE``). The run report counts the words left after every step,
    and the list of a document's words was ~0.1 CPU ms of a document's text filtering."""
    cdef Py_ssize_t n = len(text), i, count = 0
    cdef int kind = PyUnicode_KIND(text)
    cdef void *data = PyUnicode_DATA(text)
    cdef bint inside = False, space
    with nogil:
        for i in range(n):
            space = Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))
            if not space and not inside:
                count += 1
            inside = not space
    return count


# -- a WARC or HTTP header block (obelics.warc._plain_block) ------------------------------------------------
cdef inline bint _blank(unsigned char c) noexcept nogil:
    return c == 32 or c == 9


cdef bint _plain_block(const unsigned char *s, Py_ssize_t start, Py_ssize_t end) noexcept nogil:
    """Whether ``s[start:end]`` is a plain header block: ASCII without controls but tab, every CR followed by
    LF and every LF after a CR, no continuation line (a line starting with a blank or tab)."""
    cdef Py_ssize_t i = start
    cdef unsigned char c
    while i < end:
        c = s[i]
        if c == 13:
            if i + 1 >= end or s[i + 1] != 10:
                return False  # a bare CR
            if i + 2 < end and _blank(s[i + 2]):
                return False  # a continuation line
            i += 2
        elif c == 10 or c > 126 or (c < 32 and c != 9):
            return False  # a bare LF, a control character, not ASCII
        else:
            i += 1
    return True


cdef inline bint _header_line(const unsigned char *s, Py_ssize_t ls, Py_ssize_t le, Py_ssize_t *ne,
                              Py_ssize_t *vs, Py_ssize_t *ve) noexcept nogil:
    """The header line ``s[ls:le]`` of a plain block: its name is ``s[ls:ne]`` and its value ``s[vs:ve]``, both
    stripped of blanks and tabs (the only whitespace left); False for a line without a ':' (dropped)."""
    cdef Py_ssize_t e = le
    cdef const unsigned char *colon
    while e > ls and _blank(s[e - 1]):
        e -= 1
    colon = <const unsigned char *>memchr(s + ls, 58, e - ls)  # the line's first ':'
    if colon == NULL:
        return False
    ne[0] = colon - s
    while ne[0] > ls and _blank(s[ne[0] - 1]):
        ne[0] -= 1
    vs[0] = colon - s + 1
    while vs[0] < e and _blank(s[vs[0]]):
        vs[0] += 1
    ve[0] = e
    return True


def header_block(const unsigned char[::1] data, Py_ssize_t start, Py_ssize_t end):
    """``(first line, [(name, value), ...], {lower-cased name: its first value})`` of the header block
    ``data[start:end]`` (without its closing blank line) when it is plain, else None: what
    ``obelics.warc._plain_block_python`` gives (warcio's line rules, see ``_header_pairs``), in one pass over
    the bytes instead of a ``translate``, three counts, a split and a Python loop a line (~60% of the reader's
    header work on a response). Plain: ASCII without controls but tab, every CR followed by LF and every LF
    after a CR, no continuation line (a line starting with a blank or tab)."""
    cdef const unsigned char *s
    cdef Py_ssize_t ls, le, e, ne, vs
    cdef const unsigned char *cr
    cdef list pairs = []
    cdef dict first = {}
    cdef object status = None, name, value, low
    if start < 0 or end > data.shape[0] or start > end:
        raise ValueError(f"block [{start}, {end}) outside {data.shape[0]} bytes")
    if end == start:
        return "", pairs, first
    s = &data[0]
    if not _plain_block(s, start, end):
        return None
    ls = start
    while True:  # lines, split at CRLF (the only CRs left)
        cr = <const unsigned char *>memchr(s + ls, 13, end - ls)
        le = end if cr == NULL else cr - s
        if status is None:
            status = PyUnicode_DecodeASCII(<const char *>(s + ls), le - ls, NULL)
        elif _header_line(s, ls, le, &ne, &vs, &e):
            name = PyUnicode_DecodeASCII(<const char *>(s + ls), ne - ls, NULL)
            value = PyUnicode_DecodeASCII(<const char *>(s + vs), e - vs, NULL)
            pairs.append((name, value))
            low = name.lower()
            if low not in first:
                first[low] = value
        if le >= end:
            break
        ls = le + 2
    return status, pairs, first


def header_values(const unsigned char[::1] data, Py_ssize_t start, Py_ssize_t end, tuple names):
    """``(first line, [the first value of each of ``names`` or None])`` of the header block ``data[start:end]``
    when it is plain, else None: :func:`header_block`'s answer for those names (lower-case ASCII ``bytes``), made
    without the other lines' strings. The reader types a request, a metadata or a revisit record from two of
    its ~10 lines."""
    cdef const unsigned char *s
    cdef Py_ssize_t ls, le, e, ne, vs, k, m
    cdef const unsigned char *cr
    cdef const unsigned char *want
    cdef unsigned char a
    cdef Py_ssize_t n_names = len(names)
    cdef list values = [None] * n_names
    cdef object status = None
    cdef bytes nb
    if start < 0 or end > data.shape[0] or start > end:
        raise ValueError(f"block [{start}, {end}) outside {data.shape[0]} bytes")
    if end == start:
        return "", values
    s = &data[0]
    if not _plain_block(s, start, end):
        return None
    ls = start
    while True:
        cr = <const unsigned char *>memchr(s + ls, 13, end - ls)
        le = end if cr == NULL else cr - s
        if status is None:
            status = PyUnicode_DecodeASCII(<const char *>(s + ls), le - ls, NULL)
        elif _header_line(s, ls, le, &ne, &vs, &e):
            for k in range(n_names):
                if values[k] is not None:
                    continue
                nb = names[k]
                if len(nb) != ne - ls:
                    continue
                want = <const unsigned char *> nb
                for m in range(ne - ls):
                    a = s[ls + m]
                    if 65 <= a <= 90:
                        a += 32
                    if a != want[m]:
                        break
                else:
                    values[k] = PyUnicode_DecodeASCII(<const char *>(s + vs), e - vs, NULL)
        if le >= end:
            break
        ls = le + 2
    return status, values


# -- content.without_repeated_lines: whether it has a line to drop -----------------------------------------
def repeated_line_free(str text, Py_ssize_t min_chars):
    """True when no line of ``text`` (split at ``\\n``) that is not empty and has at least ``min_chars``
    characters equals the last non-empty line before it: ``content.without_repeated_lines`` then gives
    ``text`` back as it is (most texts). The lines are compared in place (one string: one kind, so equal
    characters are equal bytes); the Python split, loop and join cost ~7 µs a text."""
    cdef Py_ssize_t n = len(text), i, start = 0, last = 0, last_len = 0, length
    cdef int kind = PyUnicode_KIND(text)
    cdef const char *data = <const char *> PyUnicode_DATA(text)
    cdef const char *p
    cdef bint free_of = True
    with nogil:
        while start <= n:
            if kind == 1:
                p = <const char *> memchr(data + start, 10, n - start)
                i = n if p == NULL else p - data
            else:
                i = start
                while i < n and PyUnicode_READ(kind, <void *> data, i) != 10:
                    i += 1
            length = i - start
            if length:
                if length == last_len and length >= min_chars and memcmp(
                        data + start * kind, data + last * kind, length * kind) == 0:
                    free_of = False
                    break
                last, last_len = start, length
            start = i + 1
    return free_of
