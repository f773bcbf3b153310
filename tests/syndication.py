"""One made-up story as three outlets ran it (own boilerplate, a sentence or two reworded, own dates), and a
different story on the same topic: the material for the syndicated-copy tests."""

from __future__ import annotations

from pathlib import Path

STORY = [
    "The city council of Kestrel Bay voted 7 to 2 on Tuesday to build a tidal power plant at the mouth of the Arden "
    "estuary, ending a four-year dispute over the project.",
    "The plant will use twelve underwater turbines anchored to the seabed and is expected to supply electricity to "
    "about 18,000 homes when it opens in 2027.",
    "Mayor Ilse Varga said the vote showed that a small harbour town could lead the region in clean energy.",
    "Fishing crews had opposed the first design because the turbines would have blocked the channel used by the town's "
    "trawlers.",
    "The approved plan moves the turbines 400 metres to the east and leaves the channel open at all tides.",
    "The project will cost 96 million euros, two thirds of it paid by a regional development fund.",
    "Construction is due to start next spring, and the builder, Halvard Marine, has promised to hire at least 60 local "
    "workers.",
    "Opponents on the council said the town was taking on too much debt and asked for a public referendum, which the "
    "majority rejected.",
    "Environmental groups welcomed the decision but asked for monitoring of the seals that rest on the sandbanks near "
    "the estuary.",
    "The council will publish the full construction schedule at its next meeting in March.",
]

# outlet -> (doc id, date, title, sentences reworded by index, boilerplate before, boilerplate after)
OUTLETS = {
    "Coastal Herald": (
        "herald_tidal",
        "2024-02-06",
        "Kestrel Bay approves tidal power plant",
        {},
        "Subscribe to the Coastal Herald for local news every morning.",
        "Copyright 2024 Coastal Herald. All rights reserved.",
    ),
    "Northern Wire": (
        "wire_tidal",
        "2024-02-07",
        "Harbour town says yes to tidal turbines",
        {
            2: "Mayor Ilse Varga said the result proved that a small harbour town can lead the whole region on clean "
            "energy."
        },
        "Follow Northern Wire for the latest updates.",
        "Reporting by Northern Wire staff; editing by the news desk.",
    ),
    "Bay Times": (
        "baytimes_tidal",
        "2024-02-08",
        "Tidal plant for the Arden estuary gets the green light",
        {
            1: "Its twelve turbines, anchored to the seabed, should power around 18,000 homes once the plant opens in "
            "2027."
        },
        "Listen to this article. Share this story.",
        "Read more: all our coverage of the Kestrel Bay council.",
    ),
}

OTHER_STORY = (
    "selwyn_tidal",
    "2024-02-07",
    "Port Selwyn delays its tidal energy scheme",
    "Coastal Herald",
    [
        "Port Selwyn has put its own tidal energy scheme on hold for a year after engineers found that the harbour "
        "floor is softer than the survey suggested.",
        "The town had hoped to anchor eight turbines near the lighthouse and sell the power to the regional grid.",
        "Harbour master Tomas Reid said new drilling would start in the summer and that the design might change.",
        "Local fishing crews, who had backed the scheme, said the delay would cost them the compensation they were "
        "promised for lost grounds.",
        "The scheme's budget of 40 million euros is unchanged for now, the council treasurer said.",
        "A public meeting on the new timetable is planned for April at the town hall.",
    ],
)


def story_markdown(outlet: str) -> tuple[str, str]:
    """(file name, Markdown with front matter) of the story as `outlet` ran it."""
    doc_id, date, title, reworded, before, after = OUTLETS[outlet]
    body = " ".join(reworded.get(i, s) for i, s in enumerate(STORY))
    url = f"https://{outlet.lower().replace(' ', '')}.example/{doc_id}"
    text = f"---\ntitle: {title}\nsource: {outlet}\ndate: {date}\nurl: {url}\n---\n\n{before}\n\n{body}\n\n{after}\n"
    return f"{doc_id}.md", text


def other_markdown() -> tuple[str, str]:
    doc_id, date, title, outlet, sentences = OTHER_STORY
    return f"{doc_id}.md", f"---\ntitle: {title}\nsource: {outlet}\ndate: {date}\n---\n\n{' '.join(sentences)}\n"


def write_stories(folder: Path, outlets: list[str] | None = None, *, other: bool = True) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = [story_markdown(o) for o in (outlets or list(OUTLETS))] + ([other_markdown()] if other else [])
    paths = []
    for name, text in files:
        (folder / name).write_text(text, encoding="utf-8")
        paths.append(folder / name)
    return paths


def doc_id_of(outlet: str) -> str:
    return OUTLETS[outlet][0]
