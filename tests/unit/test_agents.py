"""tracker.agents: User-Agent strings and methods → click classes, as a table."""

from __future__ import annotations

import pytest

from tracker import agents
from tracker.agents import DEVICES, KINDS, RULES, Classification, classify

IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)
WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
WHATSAPP = "WhatsApp/2.23.20.0 A"
CURL = "curl/8.4.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

# (user agent, expected kind, expected rule)
TABLE: list[tuple[str | None, str, str]] = [
    # --- People: browsers and in-app browsers ---------------------------------------------
    (IPHONE_SAFARI, "human", "default_human"),
    (ANDROID_CHROME, "human", "default_human"),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        "human",
        "default_human",
    ),
    (WINDOWS_CHROME, "human", "default_human"),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "human",
        "default_human",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
        "human",
        "default_human",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        "human",
        "default_human",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "human",
        "default_human",
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/16.6 Mobile/15E148 Safari/604.1",
        "human",
        "default_human",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
        "human",
        "default_human",
    ),
    # Facebook's in-app browser, iOS and Android: a person tapped the link in Facebook.
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/442.0.0.38.105;FBBV/542162391;"
        "FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.1.2;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
        "human",
        "default_human",
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36 "
        "[FB_IAB/FB4A;FBAV/443.0.0.23.229;]",
        "human",
        "default_human",
    ),
    # Instagram's in-app browser, iOS and Android.
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 Instagram 302.0.0.23.114 (iPhone14,2; iOS 16_6; "
        "en_US; en; scale=3.00; 1170x2532; 520702154)",
        "human",
        "default_human",
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230805.001; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/116.0.5845.163 Mobile Safari/537.36 "
        "Instagram 298.0.0.31.110 Android (33/13; 420dpi; 1080x2400; Google/google; Pixel 7; "
        "panther; panther; en_US; 508162358)",
        "human",
        "default_human",
    ),
    # In-app browsers of apps whose previewers have rules: these must not match them.
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 Safari Line/13.20.0",
        "human",
        "default_human",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 Snapchat/12.60.0.40 (like Safari/8616.2.9.10.10, panda)",
        "human",
        "default_human",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 [Pinterest/iOS]",
        "human",
        "default_human",
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.43 Mobile Safari/537.36 "
        "Telegram-Android/10.5.0 (Samsung SM-G991B; Android 13; SDK 33; AVERAGE)",
        "human",
        "default_human",
    ),
    # A phone brand that ends in "bot", and Amazon's Silk browser.
    (
        "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Mobile Safari/537.36",
        "human",
        "default_human",
    ),
    (
        "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Silk/120.3.1 like Chrome/120.0.6099.230 Safari/537.36",
        "human",
        "default_human",
    ),
    # --- Link previewers ------------------------------------------------------------------
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) "
        "Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0",
        "preview",
        "imessage",
    ),
    ("WhatsApp/2", "preview", "signal"),
    ("WhatsApp", "preview", "signal"),
    (WHATSAPP, "preview", "whatsapp"),
    ("WhatsApp/2.2338.12 i", "preview", "whatsapp"),
    ("TelegramBot (like TwitterBot)", "preview", "telegram"),
    ("facebookexternalhit/1.1;line-poker/1.0", "preview", "line"),
    (
        "facebookexternalhit/1.1; kakaotalk-scrap/1.0; +https://devtalk.kakao.com/t/scrap/33984",
        "preview",
        "kakaotalk",
    ),
    (
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "preview",
        "facebook",
    ),
    ("Facebot", "preview", "facebook"),
    (
        "meta-externalfetcher/1.1 "
        "(+https://developers.facebook.com/docs/sharing/webmasters/crawler)",
        "preview",
        "facebook",
    ),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "preview", "slack"),
    ("Slack-ImgProxy (+https://api.slack.com/robots)", "preview", "slack"),
    ("Slackbot 1.0 (+https://api.slack.com/robots)", "preview", "slack"),
    (
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "preview",
        "discord",
    ),
    # Skype, then Teams, which kept Skype's fetcher.
    ("Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5", "preview", "skype_teams"),
    (
        "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 "
        "skype-url-preview@microsoft.com",
        "preview",
        "skype_teams",
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; MicrosoftPreview/2.0; "
        "+https://aka.ms/MicrosoftPreview) Chrome/120.0.0.0 Safari/537.36",
        "preview",
        "microsoft_preview",
    ),
    # Google documents only the token; the full string is unverified.
    ("Mozilla/5.0 (compatible; GoogleMessages)", "preview", "google_messages"),
    (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/125.0.6422.175 Mobile Safari/537.36 "
        "(compatible; Google-PageRenderer Google (+https://developers.google.com/+/web/snippet/))",
        "preview",
        "google_page_renderer",
    ),
    (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "preview",
        "google_image_proxy",
    ),
    ("Twitterbot/1.0", "preview", "twitter"),
    (
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        "preview",
        "linkedin",
    ),
    # Unverified: Viber's exact preview string is not documented.
    ("Viber/21.6.0.0 CFNetwork/1490.0.4 Darwin/23.2.0", "preview", "viber"),
    (
        "Snap URL Preview Service; bot; snapchat; https://developers.snap.com/robots",
        "preview",
        "snapchat",
    ),
    (
        "Mozilla/5.0 (compatible; Pinterestbot/1.0; +https://www.pinterest.com/bot.html)",
        "preview",
        "pinterest",
    ),
    ("Pinterest/0.2 (+https://www.pinterest.com/bot.html)", "preview", "pinterest"),
    # --- Security scanners ----------------------------------------------------------------
    ("Microsoft Office Existence Discovery", "scanner", "microsoft_office"),
    ("Mozilla/4.0 (compatible; ms-office; MSOffice 16)", "scanner", "microsoft_office"),
    (
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
        "scanner",
        "microsoft_office",
    ),
    # Most scanners fetch with stock browser strings; when one names itself, only its token is
    # known, so these rows pin the token the rule looks for, not a verified full string.
    ("Mozilla/5.0 (compatible; Proofpoint URL Defense)", "scanner", "proofpoint"),
    ("Mozilla/5.0 (compatible; Mimecast URL Protect)", "scanner", "mimecast"),
    ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "scanner", "barracuda"),
    ("Google-Safety", "scanner", "google_safety"),
    ("Mozilla/5.0 (compatible; Cisco Umbrella)", "scanner", "cisco"),
    ("Mozilla/5.0 (compatible; Trend Micro Web Reputation)", "scanner", "trend_micro"),
    ("Mozilla/5.0 (compatible; Symantec Click-time URL Protection)", "scanner", "symantec"),
    (
        "Expanse, a Palo Alto Networks company, searches across the global IPv4 space multiple "
        "times per day to identify customers' presences on the Internet.",
        "scanner",
        "palo_alto",
    ),
    ("Mozilla/5.0 (compatible; Zscaler)", "scanner", "zscaler"),
    ("Mozilla/5.0 (compatible; Cloudmark URL checker)", "scanner", "cloudmark"),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/120.0.6099.109 Safari/537.36",
        "scanner",
        "headless_browser",
    ),
    # --- Crawlers -------------------------------------------------------------------------
    (GOOGLEBOT, "crawler", "googlebot"),
    (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.6367.201 Mobile Safari/537.36 "
        "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "crawler",
        "googlebot",
    ),
    (
        "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/534+ (KHTML, like Gecko) BingPreview/1.0b",
        "crawler",
        "bing_preview",
    ),
    (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "crawler",
        "bingbot",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
        "crawler",
        "applebot",
    ),
    (
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        "crawler",
        "baiduspider",
    ),
    ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", "crawler", "yandexbot"),
    ("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", "crawler", "duckduckbot"),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", "crawler", "ahrefsbot"),
    (
        "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
        "crawler",
        "semrushbot",
    ),
    ("Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)", "crawler", "generic_bot"),
    ("Mozilla/5.0 (compatible; Linespider/1.1; +https://lin.ee/4dwXkTH)", "crawler", "generic_bot"),
    # Naver's crawler names no bot/crawler/spider; user-agents knows it.
    ("Yeti/1.1 (+http://naver.me/spd)", "crawler", "ua_parser_bot"),
    # --- HTTP libraries and command-line clients ------------------------------------------
    (CURL, "library", "curl"),
    ("PycURL/7.45.2 libcurl/8.4.0 OpenSSL/3.0.11 zlib/1.2.13", "library", "curl"),
    ("Wget/1.21.4", "library", "wget"),
    ("python-requests/2.31.0", "library", "python_requests"),
    ("Python-urllib/3.11", "library", "python_urllib"),
    ("Python/3.11 aiohttp/3.9.1", "library", "aiohttp"),
    ("python-httpx/0.27.0", "library", "httpx"),
    ("Go-http-client/1.1", "library", "go_http_client"),
    ("Go-http-client/2.0", "library", "go_http_client"),
    ("okhttp/4.12.0", "library", "okhttp"),
    (
        "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UQ1A.240205.004)",
        "library",
        "android_dalvik",
    ),
    ("MyApp/1.2 CFNetwork/1490.0.4 Darwin/23.2.0", "library", "cfnetwork"),
    ("Java/17.0.9", "library", "java"),
    ("Apache-HttpClient/4.5.14 (Java/17.0.9)", "library", "apache_httpclient"),
    ("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "library", "node_fetch"),
    ("axios/1.6.2", "library", "axios"),
    ("undici", "library", "undici"),
    ("node", "library", "undici"),
    ("libwww-perl/6.72", "library", "libwww_perl"),
    ("PostmanRuntime/7.36.0", "library", "postman"),
    ("insomnia/8.4.5", "library", "insomnia"),
    ("HTTPie/3.2.2", "library", "httpie"),
    ("Scrapy/2.11.0 (+https://scrapy.org)", "library", "scrapy"),
    ("GuzzleHttp/7", "library", "php"),
    ("Ruby", "library", "ruby"),
    ("Faraday v2.7.12", "library", "ruby"),
    # --- No User-Agent --------------------------------------------------------------------
    ("", "library", "empty_user_agent"),
    ("   ", "library", "empty_user_agent"),
    (None, "library", "empty_user_agent"),
]

FALLBACK_RULES = {"default_human", "ua_parser_bot", "empty_user_agent", "head_request"}


def _row_id(row: tuple[str | None, str, str]) -> str:
    user_agent, _, rule = row
    return f"{rule}:{(user_agent or repr(user_agent))[:40]}"


@pytest.mark.parametrize(("user_agent", "kind", "rule"), TABLE, ids=[_row_id(r) for r in TABLE])
def test_classify(user_agent: str | None, kind: str, rule: str) -> None:
    result = classify(user_agent)
    assert (result.kind, result.rule) == (kind, rule)
    if kind == "human":
        assert result.device in {"mobile", "tablet", "desktop"}
    elif rule != "empty_user_agent":
        assert result.device == "bot"


def test_every_rule_is_exercised_by_the_table() -> None:
    tested = {rule for _, _, rule in TABLE}
    assert {r.name for r in RULES} - tested == set()


def test_rules_have_names_and_valid_kinds() -> None:
    for rule in RULES:
        assert rule.name
        assert rule.name == rule.name.strip().lower()
        assert rule.kind in KINDS
        assert rule.kind != "human", "rules name software; people are the fallback"


def test_rule_names_are_unique_and_distinct_from_the_fallbacks() -> None:
    names = [r.name for r in RULES]
    assert len(names) == len(set(names))
    assert not FALLBACK_RULES & set(names)


def test_head_from_a_browser_is_a_scanner_but_keeps_its_device() -> None:
    assert classify(IPHONE_SAFARI, "HEAD") == Classification(
        "scanner", "head_request", "mobile", "iOS", "Mobile Safari"
    )
    assert classify(IPHONE_SAFARI, "head").rule == "head_request"


@pytest.mark.parametrize(
    ("user_agent", "kind", "rule"),
    [
        (WHATSAPP, "preview", "whatsapp"),
        (CURL, "library", "curl"),
        (GOOGLEBOT, "crawler", "googlebot"),
        ("Yeti/1.1 (+http://naver.me/spd)", "crawler", "ua_parser_bot"),
        (None, "library", "empty_user_agent"),
    ],
)
def test_head_keeps_a_more_specific_answer(user_agent: str | None, kind: str, rule: str) -> None:
    result = classify(user_agent, "HEAD")
    assert (result.kind, result.rule) == (kind, rule)


def test_get_and_other_methods_do_not_change_the_answer() -> None:
    assert (
        classify(IPHONE_SAFARI) == classify(IPHONE_SAFARI, "GET") == classify(IPHONE_SAFARI, "POST")
    )


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (IPHONE_SAFARI, Classification("human", "default_human", "mobile", "iOS", "Mobile Safari")),
        (
            ANDROID_CHROME,
            Classification("human", "default_human", "mobile", "Android", "Chrome Mobile"),
        ),
        (WINDOWS_CHROME, Classification("human", "default_human", "desktop", "Windows", "Chrome")),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
            Classification("human", "default_human", "tablet", "iOS", "Mobile Safari"),
        ),
        (WHATSAPP, Classification("preview", "whatsapp", "bot", "Other", "WhatsApp")),
        (None, Classification("library", "empty_user_agent", "other", "Other", "Other")),
    ],
)
def test_device_os_and_browser(user_agent: str | None, expected: Classification) -> None:
    assert classify(user_agent) == expected


def test_every_answer_uses_the_documented_vocabularies() -> None:
    for user_agent, _, _ in TABLE:
        result = classify(user_agent)
        assert result.kind in KINDS
        assert result.device in DEVICES
        assert result.os
        assert result.browser


def test_only_the_first_512_characters_count() -> None:
    padded = IPHONE_SAFARI + " " * agents.SIGNIFICANT_LENGTH + "Googlebot/2.1"
    assert classify(padded) == classify(padded[: agents.SIGNIFICANT_LENGTH])
    assert classify(padded).rule == "default_human"
    for user_agent, _, _ in TABLE:
        if user_agent is not None:
            assert classify(user_agent[: agents.SIGNIFICANT_LENGTH]) == classify(user_agent)


def test_results_are_cached_per_user_agent() -> None:
    cached = agents._classify_user_agent
    user_agent = IPHONE_SAFARI + " tracker-cache-test"
    before = cached.cache_info()
    first = classify(user_agent)
    again = classify(user_agent)
    head = classify(user_agent, "HEAD")
    after = cached.cache_info()
    assert first == again
    assert head.device == first.device
    assert after.hits - before.hits >= 2
    assert after.misses - before.misses <= 1
