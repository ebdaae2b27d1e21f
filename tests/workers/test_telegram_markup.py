"""Telegram's HTML and MarkdownV2 as the worker reads them (`telegram.markup`): plain text and
entities, Telegram's refusals with their place, lengths after parsing, rendering and splitting.
The fake Bot API's independent checker is the second opinion on the same inputs."""

from __future__ import annotations

import pytest

from notifierd.workers.telegram import TelegramParams, TelegramWorker
from notifierd.workers.telegram.markup import (
    Entity,
    Format,
    MarkupError,
    Parsed,
    parse,
    render,
    split,
    utf16_len,
)
from tests.fakes.telegram_api import TOKEN
from tests.fakes.telegram_entities import EntityError, plain_text


def refusal(text: str, fmt: Format) -> str:
    with pytest.raises(MarkupError) as caught:
        parse(text, fmt)
    return str(caught.value)


# -- HTML --------------------------------------------------------------------------------------


def test_html_nested_tags_give_nested_entities() -> None:
    parsed = parse("<b>bold <i>both <u>all</u></i></b> none", "html")
    assert parsed == Parsed(
        "bold both all none",
        (
            Entity("bold", 0, 13),
            Entity("italic", 5, 13),
            Entity("underline", 10, 13),
        ),
    )


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("a &lt; b &gt; c &amp; &quot;d&quot;", 'a < b > c & "d"'),
        ("&#128293; &#x1F525; &#65", "🔥 🔥 A"),
        ("&lt5 &ampx &nbsp; &copy; AT&T &#0; &#x;", "<5 &ampx &nbsp; &copy; AT&T &#0; &#x;"),
        ("<B>upper</B> <Strong>case</STRONG>", "upper case"),
        ("<b >spaced</b > <b\nclass='x'>attr</b>", "spaced attr"),
        ("<i></i>empty", "empty"),
        ("line\r\nbreak", "line\nbreak"),
    ],
)
def test_html_references_and_tags_read_as_telegram_reads_them(text: str, plain: str) -> None:
    assert parse(text, "html").text == plain
    assert plain_text(text, "HTML") == plain


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ('<a href="https://x.org/?a=1&amp;b=2">l</a>', Entity("text_link", 0, 1, "https://x.org/?a=1&b=2")),
        ("<a href='tg://user?id=1'>l</a>", Entity("text_link", 0, 1, "tg://user?id=1")),
        ("<a>https://x.org</a>", Entity("text_link", 0, 13, "https://x.org")),
        ('<pre><code class="language-python">x</code></pre>', Entity("pre", 0, 1, "python")),
        ('<code class="language-python"><pre>x</pre></code>', Entity("pre", 0, 1, "python")),
        ('<code class="language-python">x</code>', Entity("code", 0, 1)),
        ('<span class="tg-spoiler">x</span>', Entity("spoiler", 0, 1)),
        ("<span class=tg-spoiler>x</span>", Entity("spoiler", 0, 1)),
        ("<blockquote expandable>x</blockquote>", Entity("blockquote", 0, 1, "expandable")),
        ('<tg-emoji emoji-id="536832">👍</tg-emoji>', Entity("custom_emoji", 0, 1, "536832")),
    ],
)  # fmt: skip
def test_html_attributes(text: str, entity: Entity) -> None:
    assert parse(text, "html").entities == (entity,)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("load < 5", 'Unsupported start tag "" at character 6'),
        ("load <5 ok", 'Unsupported start tag "5" at character 6'),
        ("load <5", "Unclosed start tag at character 6"),
        ("a<br>b", 'Unsupported start tag "br" at character 2'),
        ("<p>x</p>", 'Unsupported start tag "p" at character 1'),
        ("🔥 <b/>x", 'Unsupported start tag "b/" at character 3'),
        ("x <b", "Unclosed start tag at character 3"),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at character 8, expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag at character 2"),
        ("<b>x</b", "Unclosed end tag at character 5"),
        ("<a href=http://x>l</a>", "Unexpected end of name token at character 9"),
        ('<a href="x', "Unclosed start tag at character 1"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at character 1'),
        ("<b =1>x</b>", 'Empty attribute name in the tag "b" at character 1'),
        ("&#xD83D;&#xDD25;", "check for unmatched surrogate code units"),
        ('<tg-emoji emoji-id="x">👍</tg-emoji>', "Invalid custom emoji identifier specified"),
    ],
)
def test_html_telegram_refuses_says_where(text: str, reason: str) -> None:
    assert reason in refusal(text, "html")
    with pytest.raises(EntityError):  # the fake agrees that Telegram refuses it
        plain_text(text, "HTML")


def test_a_position_counts_characters_from_one_where_telegram_counts_bytes() -> None:
    with pytest.raises(MarkupError) as caught:
        parse("Привет 🔥 <br>", "html")
    assert (caught.value.position, str(caught.value)) == (
        9,
        'Unsupported start tag "br" at character 10',
    )
    with pytest.raises(EntityError, match=r'"br" at byte offset 18$'):
        plain_text("Привет 🔥 <br>", "HTML")


# -- MarkdownV2 --------------------------------------------------------------------------------


def test_markdown_v2_entities() -> None:
    text = "*b _i_* __u__ ~s~ ||sp|| `c` [l](https://x.org) ```py\nx```"
    assert parse(text, "markdownv2") == Parsed(
        "b i u s sp c l x",
        (
            Entity("bold", 0, 3),
            Entity("italic", 2, 3),
            Entity("underline", 4, 5),
            Entity("strikethrough", 6, 7),
            Entity("spoiler", 8, 10),
            Entity("code", 11, 12),
            Entity("text_link", 13, 14, "https://x.org"),
            Entity("pre", 15, 16, "py"),
        ),
    )


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("\\_\\*\\[\\]\\(\\)\\~\\`\\>\\#\\+\\-\\=\\|\\{\\}\\.\\!\\\\", "_*[]()~`>#+-=|{}.!\\"),
        ("\\a\\1 ünïcödé 🔥 100% $5 @user <b\\>", "a1 ünïcödé 🔥 100% $5 @user <b>"),
        ("`a.b-c(d) \\` \\\\`", "a.b-c(d) ` \\"),
        ("```\n1. x = (y)\n```", "1. x = (y)\n"),
        ("[x](https://e.org/a\\)b\\\\)", "x"),
        (">one\n>two\nthree", "one\ntwo\nthree"),
        ("**>one\n>two||\nthree", "one\ntwo\nthree"),
        ("___iu_\r__", "iu"),
        ("*a\nb*", "a\nb"),
        ("![👍](tg://emoji?id=5368324170671202286)", "👍"),
    ],
)
def test_markdown_v2_escapes_and_blocks(text: str, plain: str) -> None:
    assert parse(text, "markdownv2").text == plain


def test_markdown_v2_blockquotes_and_urls_as_entities() -> None:
    assert parse(">one\n>two\nthree", "markdownv2").entities == (Entity("blockquote", 0, 7),)
    assert parse("**>a||", "markdownv2").entities == (Entity("blockquote", 0, 1, "expandable"),)
    assert parse("[x](https://e.org/a\\)b)", "markdownv2").entities == (
        Entity("text_link", 0, 1, "https://e.org/a)b"),
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Disk 90% full.", "must be escaped with the preceding '\\' at character 14"),
        ("db-1", "Character '-' is reserved"),
        ("f(x)", "Character '(' is reserved"),
        ("a > b", "Character '>' is reserved"),
        ("a|b", "Character '|' is reserved"),
        ("hi!", "Character '!' is reserved"),
        ("*bold", "Can't find end of Bold entity at character 1"),
        ("x _it", "Can't find end of Italic entity at character 3"),
        ("x __u", "Can't find end of Underline entity at character 3"),
        ("`code", "Can't find end of Code entity at character 1"),
        ("```py\ncode", "Can't find end of PreCode entity at character 1"),
        ("[l](http://x", "Can't find end of a URL at character 5"),
        (">q *b\nc*", "Can't find end of Bold entity at character 4"),
        ("![x](https://x.org)", "Invalid tg://emoji or tg://time URL specified"),
    ],
)  # fmt: skip
def test_markdown_v2_telegram_refuses_says_where(text: str, reason: str) -> None:
    assert reason in refusal(text, "markdownv2")


@pytest.mark.parametrize(
    "text",
    ["Disk 90% full.", "db-1", "*bold", "x _it", "`code", "[l](http://x", ">q *b\nc*", "a > b"],
)
def test_the_fake_agrees_markdown_v2_is_refused(text: str) -> None:
    with pytest.raises(EntityError):
        plain_text(text, "MarkdownV2")


# -- length ------------------------------------------------------------------------------------


def test_lengths_are_characters_after_parsing_and_cuts_utf16_units() -> None:
    assert len(parse("<b>🔥</b>&#128293;&lt;", "html").text) == 3
    assert len(parse("*🔥*\\.", "markdownv2").text) == 2
    assert (utf16_len("🔥"), utf16_len("é")) == (2, 1)


def check(fmt: Format, message: str, **params: object) -> str | None:
    channel = TelegramParams(token=TOKEN, chat_id=1, format=fmt, **params)
    return TelegramWorker.check_message(channel, message)


def test_check_message_measures_characters_after_parsing() -> None:
    assert check("html", "<b>" + "x" * 4096 + "</b>") is None
    assert check("html", "<b>" + "🔥" * 4096 + "</b>") is None
    reason = check("html", "<b>" + "🔥" * 4096 + "</b>&amp;")
    assert reason is not None and "4097 characters long" in reason
    assert check("markdownv2", "\\." * 4096) is None
    assert check("markdownv2", "\\." * 4097) is not None


def test_check_message_refuses_empty_markup_and_too_many_parts() -> None:
    assert check("html", "<b> </b>") == "the message has no text once its html markup is removed"
    reason = check("html", "<b>" + "x " * 4000 + "</b>", split_long=True, max_parts=1)
    assert reason is not None and "split into 2 Telegram messages" in reason
    assert check("html", "<b>" + "x " * 4000 + "</b>", split_long=True, max_parts=2) is None


def test_check_message_leaves_plain_text_alone() -> None:
    assert check("text", "load < 5 <br> 1.5 *x") is None


# -- rendering and splitting -------------------------------------------------------------------

ROUND_TRIP = [
    ("html", '<b>a <i>b</i></b> &lt;c&gt; &amp; <a href="https://x.org/?q=&quot;">d</a>'),
    ("html", '<pre><code class="language-py">if a &lt; b:\n  pass</code></pre>'),
    ("html", "<blockquote expandable>q\nr</blockquote>\n<tg-spoiler>s</tg-spoiler>"),
    ("markdownv2", "*a _b_* \\<c\\> ~d~ ||e|| `f\\`g` [h](https://x.org/\\)) ```py\ni\n```"),
    ("markdownv2", ">one *b*\n>two\nthree\n**>four\n>five||\nsix"),
    ("markdownv2", "_a __b__\r_ __c _d_\r__"),
]


@pytest.mark.parametrize(("fmt", "text"), ROUND_TRIP)
def test_render_gives_back_what_parse_read(fmt: Format, text: str) -> None:
    parsed = parse(text, fmt)
    rendered = render(parsed, fmt)
    assert parse(rendered, fmt) == parsed
    assert plain_text(rendered, fmt) == parsed.text


@pytest.mark.parametrize(
    ("fmt", "line"),
    [
        ("html", "<b>bold <i>it &lt; 5</i></b> plain <code>c</code> 🔥"),
        ("html", '<a href="https://x.org">link text</a> <u>under <s>struck</s></u>'),
        ("markdownv2", "*bold _it \\< 5_* plain `c` 🔥 \\(x\\)"),
        ("markdownv2", "[link text](https://x.org) __under ~struck~__ ||sp||"),
    ],
)
@pytest.mark.parametrize("wrap", ["", "outer"])
def test_split_parts_each_parse_within_the_limit(fmt: Format, line: str, wrap: str) -> None:
    text = "\n".join([line] * 300)
    if wrap:  # one entity over the whole text, open at every cut
        text = f"<i>{text}</i>" if fmt == "html" and "<i>" not in line else text
        text = f"<s>{text}</s>" if fmt == "html" else f"~{text}~"
    parsed = parse(text, fmt)
    parts = split(parsed, 1000)
    assert len(parts) > 1
    for part in parts:
        rendered = render(part, fmt)
        assert parse(rendered, fmt) == part
        assert plain_text(rendered, fmt) == part.text  # the fake reads it the same
        assert utf16_len(part.text) <= 1000
    assert "\n".join(part.text for part in parts) == parsed.text


def test_split_closes_and_reopens_the_entities_open_at_a_cut() -> None:
    parsed = parse("<b>aaa <i>bbb ccc</i> ddd</b>", "html")
    parts = split(parsed, 9)
    assert [render(part, "html") for part in parts] == [
        "<b>aaa <i>bbb</i></b>",
        "<b><i>ccc</i> ddd</b>",
    ]


def test_split_cuts_hard_between_surrogate_pairs_never_inside_one() -> None:
    parsed = parse("<b>" + "🔥" * 5 + "</b>", "html")
    parts = split(parsed, 4)
    assert [part.text for part in parts] == ["🔥🔥", "🔥🔥", "🔥"]
    assert [render(part, "html") for part in parts] == ["<b>🔥🔥</b>", "<b>🔥🔥</b>", "<b>🔥</b>"]


def test_split_never_cuts_inside_a_custom_emoji() -> None:
    emoji = '<tg-emoji emoji-id="5368324170671202286">👨‍👩‍👧</tg-emoji>'
    parsed = parse("x" * 8 + emoji + "y" * 8, "html")
    parts = split(parsed, 10)
    # The family emoji is 8 UTF-16 units: the hard cut after 10 would fall inside it.
    assert [part.text for part in parts] == ["x" * 8, "👨‍👩‍👧yy", "y" * 6]
    assert render(parts[1], "html") == emoji + "yy"


def test_split_a_blockquote_keeps_each_part_quoted() -> None:
    parsed = parse(">" + "\n>".join(["line of quote"] * 4) + "\nafter", "markdownv2")
    parts = split(parsed, 30)
    rendered = [render(part, "markdownv2") for part in parts]
    assert rendered == [">line of quote\n>line of quote", ">line of quote\n>line of quote", "after"]
