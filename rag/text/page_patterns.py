"""What web boilerplate looks like, line by line: share bars, ads, bylines, datelines, teasers, promotions,
bios and list headings. rag/text/cleaning.py classifies each line of a page with these."""

from __future__ import annotations

import re

TERMINAL = re.compile(r"(?:[.!?]|…)[\"'”’»)\]]*$")
SENTENCE_END = re.compile(r"[.!?][\"'”’]?(?:\s|$)")
LABEL = re.compile(r"^[A-Z][a-z]{2,15}:\s+\S")  # "Background: ...", "Source: ..." (not "Ukraine war: ...")
TIMESTAMP = re.compile(
    r"^(?:\d{1,2}[:.]\d{2}(?:\s*[ap]\.?m\.?)?|\d{1,3}\s+(?:min(?:ute)?s?|hours?|hrs?|days?|weeks?)\s+ago)$", re.I
)
URL = re.compile(r"^<?(https?://\S+?)>?$")
BULLET = re.compile(r"^[•·▪►»›◦*–—-]\s*")
AD = re.compile(
    r"^(?:advertisement|advertising|ad|sponsored(?: content)?|promoted|partner content|"
    r"(?:story )?continues below(?: advertisement)?|continue reading below|scroll to continue.*)\s*:?$",
    re.I,
)
SHARE_WORD = (
    r"(?:share|tweet|email|e-mail|print|copy(?: "
    r"link)?|link|facebook|twitter|x|whatsapp|telegram|linkedin|reddit|pinterest|messenger|flipboard|comments?|save|\d+"
    r")"
)
SHARE = re.compile(rf"^(?:{SHARE_WORD}(?:[\s|•·,/]+|$))+$|^share (?:this|on|via)\b.{{0,40}}$", re.I)
NAV = frozenset(
    "all sections|sections|menu|main menu|home|search|skip to content|skip to main content|close|"
    "navigation|toggle navigation|back to top|top|news|world|live|subscribe|sign in|log in|"
    "login|register|account|my account|edition|choose edition".split("|")
)
CAPTION = re.compile(
    r"\b(?:REUTERS|Reuters|AFP|EPA(?:-EFE)?|AP|Getty|Anadolu|Pool)/\S"
    r"|\bFile Photo\s*$|(?:Getty Images|Shutterstock|AP Photo[^.]*)\s*$"
    r"|^(?:Photo|Photograph|Image|Picture|Illustration)(?:\s+credit)?\s*:|\((?:Photo|Image)[^)]*\)\s*$"
)
VIA = re.compile(r"^via\s+\S+(?:\s+\S+){0,5}$", re.I)
BYLINE = re.compile(r"^(?:by|posted by|written by)\b\s*[|:,–-]?\s*(?P<rest>.*)$", re.I)
CREDITS = re.compile(
    r"^\(?\s*(?:additional\s+)?(?:reporting|writing|editing|compiled|edited|reported)\s+by\b.{0,250}$", re.I
)
REPORTER = re.compile(
    r"(?:reporting|written|writing|reported)\s+by\s+(.+?)(?:\s+in\s+[A-Z][\w-]+)?\s*(?:[;)]|,\s*(?:additional|editing|writing)|$)",
    re.I,
)
DATELINE = re.compile(
    r"^[A-Z][A-Z.'’ -]{2,40}(?:,\s*[A-Z][A-Za-z.'’ -]{2,30})?\s*(?:\((?P<agency>[A-Z][\w.&' -]{1,30})\))?\s*[-–—:]?$"
)
# "New York CNN Business —", "Jackson, Wyoming CNN —": a wire dateline whose parentheses the scrape dropped. A
# headline does not end on a dash.
DASH_DATELINE = re.compile(r"^[A-Z][\w.'’-]*(?:,?\s+[A-Z][\w.'’-]*){0,7}\s*[-–—]$")
# "By Jane Doe Ann Lee, Jane Doe, Ann Lee": a list of names, however long; not "By Friday the talks had ended".
NAMES_ONLY = re.compile(r"^(?:[A-Z][\w.'’-]*|and|&|,)(?:[\s,]+(?:[A-Z][\w.'’-]*|and|&))*$")
# "Yellowstone still closed as flooding recedes and thousands ...": a headline cut short by the page it was
# scraped from (a space before the dots). Not a sentence's end, so not prose.
CUT_SHORT = re.compile(r"\s(?:\.{3}|…)$")
AGENCY = re.compile(r"^[A-Z][A-Za-z.'’ ,-]{1,60}?\((?P<agency>[A-Z][\w.&' -]{1,30})\)\s*[-–—]")
LIST_HEADING = re.compile(
    r"^(?:related(?: \w+){0,2}|read (?:more|also|next)|also read|"
    r"see also|more (?:from|on|in|stories|news)\b.*|next in\b.*|recent (?:news|posts|articles|stories)|"
    r"latest(?: news| stories| articles| headlines)?|(?:others|people|readers) also read|"
    r"you (?:may|might) also like|recommended(?: for you| stories| articles| reading)?|"
    r"most (?:popular|read|viewed|shared|commented)|popular(?: now| stories| news)?|trending(?: now| stories)?|"
    r"top (?:stories|news|headlines)|all (?:news|stories|articles|headlines)|editor'?s picks|"
    r"what to read next|in other news|further reading|don'?t miss|around the web|topics|tags)\s*:?$",
    re.I,
)
TEASER = re.compile(
    r"^(?:read (?:more|also|next)|also read|see also|related|watch|listen)\s*[:|»›]\s*\S.{0,200}$", re.I
)
OWN_PROMO_HEADING = re.compile(
    r"^our (?:books|podcasts?|newsletters?|apps?|shop|store|events|partners|products|journalism)$", re.I
)
# Phrases that only appeals and site chrome use; they mark a line unless it is a long paragraph.
PROMO = re.compile(
    r"\bsupport\s+(?:us|our\s+(?:work|journalism|newsroom)|independent\s+journalism)\b|\byour\s+(?:support|donation)\b|"
    r"\bbecome\s+(?:our|a)\s+(?:patron|member|subscriber|supporter)\b|\bfollow\s+us\b|\bjoin\s+us\s+on\b|"
    r"\bthank\s+you\s+for\s+(?:reading|registering|subscribing|signing|your\s+support)\b|\bcreate\s+an\s+account\b|"
    r"\brefresh\s+(?:the|this|your)\s+(?:page|browser)\b|\bbrowser\s+(?:preferences|settings)\b|\bpatreon\b|"
    r"\bclick\s+here\b|\ball\s+rights\s+reserved\b|©|\bbreaking\s+news\s+alerts?\b|\bdownload\s+(?:our|the)\s+app\b|"
    r"\bstay\s+(?:up\s+to\s+date|informed|updated|tuned)\s+with\b|\b(?:sign\s+up|subscribe)\s+(?:to|for|now|today|here)\b|"
    r"\blogged\s+in\b|^(?:sign\s*(?:up|in)|log\s*in|register|subscribe)\b.{0,30}$",
    re.I,
)
# Words news also uses ("donated tanks", "said on his Telegram channel"); they mark a line only
# when it also addresses the reader.
PROMO_WEAK = re.compile(
    r"\bsubscri(?:be|bed|bing|ption|ptions|bers?)\b|\bnewsletters?\b|\bdonat(?:e|es|ed|ing|ion|ions)\b|\bpatrons?\b|"
    r"\bnotifications?\b|\bcookies?\b|\bbrowser\b|\bsign\s*(?:up|in)\b|\blog\s*in\b|\bregist(?:er|ering|ration)\b|"
    r"\bpaywalls?\b|\bjournalism\b|\bprivacy\s+(?:policy|settings)\b|\bterms\s+of\s+(?:use|service)\b|\blaunched\b|"
    r"\b(?:whatsapp|telegram|twitter|facebook|instagram|youtube|viber|tiktok)\b",
    re.I,
)
# First and second person outside quotes: how appeals talk ("we need your support") and reports do not.
WEAK = re.compile(r"\b(?:[Ww]e|[Oo]urs?|us|[Yy]ou|[Yy]ours?)\b")
QUOTED = re.compile(r"“[^”]*(?:”|$)|\"[^\"]*(?:\"|$)|«[^»]*(?:»|$)")
CAP = r"[A-Z][\w'’&-]*(?:\.\w+)*"  # a capitalised word; "Institute. Will" stops at the full stop
NAME = rf"{CAP}(?:\s+(?:of\s+)?{CAP}){{0,3}}"
FROM_PUBLISHER = re.compile(rf"\bfrom\s+((?:The\s+)?{NAME})\s*[.!]?$")
SUPPORT_PUBLISHER = re.compile(rf"\bSupport\s+((?:The\s+)?{NAME})")
AFFILIATION = re.compile(
    rf"\b(?:editor|writer|reporter|correspondent|columnist|contributor|director|fellow)\s+(?:of|at|for)\s+(?:the\s+)?({NAME})"
)
# An aggregator crediting its source: "Euractiv writes about this, citing sources". Not "Arkansas reports first
# coronavirus case" or "Charles Finch writes the Lenox mysteries", which made RealTime QA outlets of both.
WRITES = re.compile(
    rf"^({NAME})\s+(?:writes|reports|wrote|reported)(?:\s+about\s+(?:this|it))?,?\s+(?:citing|quoting)\b|^({NAME})\s+(?:writes|reports)\s+about\s+(?:this|it)\b"
)
BIO = re.compile(r"^About\s+(?:the\s+authors?|(?P<names>[A-Z][\w.'’-]+(?:\s+(?:[A-Z][\w.'’-]+|and|&))*))$")
NOT_PUBLISHER = frozenset({"us", "our", "the", "this", "we", "independent journalism"})  # "Support Us"
