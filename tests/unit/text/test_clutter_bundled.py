"""The five bundled scrapes: clutter never reaches a passage, every body paragraph survives, metadata is right.

The lists below are written out by hand from data/corpus/ so that a cleaner change that drops a
real paragraph, or lets a sidebar headline through, fails here by name.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.core.types import Article, Passage
from rag.ingest.corpus import load_article
from rag.text.chunking import chunk_article
from rag.text.normalise import normalise_text
from rag.text.sentences import split_sentences

CORPUS = Path(__file__).resolve().parents[3] / "data" / "corpus"

CLUTTER: dict[str, list[str]] = {
    "000_ff6882ef16d64a7d": [
        "date 2023-06-16 14:12 26 May Kyiv, Ukraine",
    ],
    "001_d33884d0ecc97606": [
        "Stay up to date with notifications from The Independent",
        "Notifications can be managed in browser preferences.",
        "Via AP news wire",
        "Thursday 15 June 2023 08:15 BST",
        "Your support helps us to tell the story",
        "From reproductive rights to climate change to Big Tech, The Independent is on the ground when the story is "
        "developing. Whether it's investigating the financials of Elon Musk's pro-Trump PAC or producing our latest "
        "documentary, 'The A Word', which shines a light on the American women fighting for reproductive rights, we "
        "know how important it is to parse out the facts from the messaging.",
        "At such a critical moment in US history, we need reporters on the ground. Your donation allows us to keep "
        "sending journalists to speak to both sides of the story.",
        "The Independent is trusted by Americans across the entire political spectrum. And unlike many other quality "
        "news outlets, we choose not to lock Americans out of our reporting and analysis with paywalls. We believe "
        "quality journalism should be available to everyone, paid for by those who can afford it.",
        "Your support makes all the difference.",
        "Thank you for registering",
        "Please refresh the page or navigate to another page on the site to be automatically logged inPlease refresh "
        "your browser to be logged in",
    ],
    "002_e0b0d12e770a7305": [
        "• World",
        "• Tuesday, 19 Mar 2024",
        "A Ukrainian national flag rises in front of the NATO emblem, amid Russia's attack on Ukraine, in central "
        "Kyiv, Ukraine July 11, 2023. REUTERS/Valentyn Ogirenko/File Photo",
        "(Reporting by Anastasiia Malenko; editing by Tom Balmforth and Christina Fincher)",
        "Follow us on our official WhatsApp channel for breaking news alerts and key updates!",
        "Next In World",
        "Taiwan rattled by 5.1 magnitude quake, no immediate reports of damage",
        "Russia is preparing for contacts with the United States on Ukraine, the Kremlin says",
        "Pope Leo decries leaders who invoke religion for violence and nationalism",
        "Migrants stuck in Mauritania after EU border pact brings crackdown",
        "Oman and India sign comprehensive economic partnership agreement - Oman's state news agency",
        "Ukraine says 180,000 consumers were left without power after Russian overnight attack",
        "Russia sentences Briton who fought for Ukraine to 13 years in prison camp",
        "EU leaders face crunch decision on using frozen Russian assets for Ukraine",
        "Three dead, cargo ship catches fire in drone attacks on Russia's Rostov region",
        "Takeaways from Trump's year-end address to the nation",
        "Others Also Read",
    ],
    "003_75066b03832c0bdd": [
        "All Sections",
        "Укр Рус Eng Support Us",
        "Укр Рус Eng",
        "Support Us",
        "European PravdaThursday, 1 June 2023, 11:50",
        "Advertisement:",
        "We have launched English Twitter! Follow us!",
        "Journalists fight on their own frontline. Support Ukrainska Pravda or become our patron!",
        "Advertisement:",
        "Ukrainian pilots have not yet gone abroad for training",
        "Ukrainian army advances on Bakhmut front, capturing strategic heights – Ukraine's Deputy Defence Minister",
        "VIDEOSubstation ablaze in Siberia, media reports of explosion",
        'Russian radio stations broadcast panicky announcement by Putin of "invasion by Armed Forces of Ukraine", '
        "Kremlin says it's a fake",
        "videoFreedom of Russia Legion destroys Russian tanks in Belgorod Oblast using drones",
        "InfographicOnly 40% of Slovaks and 46% of Bulgarians believe in Russia's attack on Ukraine; figures in "
        "Hungary improve",
        "All News",
        "RECENT NEWS",
        "00:00",
        "Russians damage ammonia pipeline during attack on Kharkiv Oblast",
        "22:25",
        "Russians fire at Kozatske, Kherson Oblast, killing woman",
        "22:18",
        'Zelenskyy thanks soldiers deployed near Bakhmut for bringing "the news we expect"',
        "21:41",
        "Zelenskyy to appeal to the Swiss parliament on 15 June, some MPs are promising to boycott",
        "21:24",
        "Ukrainian pilots have not yet gone abroad for training",
        "21:08",
        "In May, 8 international companies completely left Russian market – KSE Institute",
        "21:05",
        "Ukraine has enough weapons for a counteroffensive – Foreign Minister",
        "20:41",
        "photoRussian Volunteer Corps and Freedom of Russia Legion said they killed a colonel of Russian Armed Forces "
        "in Belgorod Oblast",
        "19:54",
        "Ukraine possibly launched a counter-offensive; Russia's defence will be tough – NYT",
        "19:42",
        "Invaders use Smerch multiple rocket launchers to hit Balakliia, Kharkiv Oblast: 1 killed, 9 wounded",
        "All News",
        "Advertisement:",
    ],
    "004_7c186e125f3c4461": [
        "by | May 8, 2023",
        "Zelensky with NATO Flag",
        "About Kyle Anzalone and Will Porter",
        "Kyle Anzalone is the opinion editor of and news editor of the Libertarian Institute. Will Porter is the "
        "assistant news editor of the Libertarian Institute and a staff writer and editor at RT. Kyle Anzalone and "
        "Will Porter host Conflicts of Interest along with Connor Freeman.",
        "Our Books",
        "latest book lineup.",
        "Related Articles",
    ],
}

BODY: dict[str, list[str]] = {
    "000_ff6882ef16d64a7d": [
        "NATO intends to invite Ukraine to upgrade its partner status to show political support, although any concrete "
        "roadmap for its entry remains a distant prospect.",
        "Euractiv writes about this, citing sources.",
        "Ukraine's bid to join NATO eight months ago has gone unanswered but is likely to be the focus of the "
        "alliance's Vilnius summit in July. Meanwhile, he supports the idea of raising the status of Ukraine in the "
        "Alliance, the newspaper writes.",
        'NATO countries seek to raise the status of Ukraine in their relations through the creation of a "Ukraine-NATO '
        'Council". The idea has gained popularity and will be a signal for a show of improved relations, several '
        "Alliance diplomats told Euractiv.",
        'Two NATO diplomats said it would be the first step in "strengthening the political partnership" between the '
        "Alliance and Kiev after the outbreak of war and Ukraine's application for membership.",
        "NATO foreign ministers are set to meet in Oslo next week, where they are expected to discuss the shape and "
        "timetable of the new council and future membership, as well as the need for more military assistance to "
        "Ukraine as it prepares for a summer offensive against Russia, the sources said.",
        'According to the plan, Ukraine will be a "full" member at the Ukraine-NATO Council table, and not just '
        "invited for discussions, as it is now.",
        "The Ukrainians could then call meetings whenever they wish, and it would be easier to provide direct "
        "information about the situation on the battlefield, two people with knowledge of the discussions said.",
        "This will open doors to a wide range of new areas of cooperation that did not previously exist, three other "
        "sources noted.",
        "Creating a common format with Kiev would help shape Ukraine as a future member, which would help bring it as "
        "close as possible to NATO standards to ensure a smooth transition when the time comes, diplomats say.",
    ],
    "001_d33884d0ecc97606": [
        "NATO defense ministers gathered Thursday to discuss future relations with Ukraine as Russia’s war on the "
        "country thwarts its hopes of joining the world’s biggest security alliance soon.",
        "The ministers were also due to take part in a separate meeting at NATO headquarters of the U.S.-led Ukraine "
        "Contact Group — the forum Ukraine’s supporters routinely join to try to drum up weapons and ammunition to "
        "help Kyiv fight the Russian invasion.",
        "The NATO meeting comes just under a month before U.S. President Joe Biden and his counterparts gather for a "
        "summit in Lithuania in a symbolic show of support for Ukraine. They are expected to underscore their "
        "determination to act should Russian President Vladimir Putin try to expand the war westward.",
        "NATO agreed in 2008 that Ukraine would join the organization one day, but did not set a date for it to start "
        "membership talks.",
        "As the war ground on, Ukraine applied for “accelerated accession” to NATO on Sept. 30. With its Crimean "
        "Peninsula annexed, and Russian troops and pro-Moscow separatists holding parts of the south and east, it’s "
        "not clear what Ukraine’s borders would even look like.",
        "NATO Secretary-General Jens Stoltenberg has said there is no consensus for the country to join while it is at "
        "war with Russia.",
        "“We agree that the most urgent task now is to ensure that Ukraine prevails as a sovereign independent nation "
        "because unless Ukraine prevails and can continue as a democratic state in Europe, there is no membership "
        "issue to be discussed at all,” he said, ahead of the meeting.",
        "Stoltenberg said that he expects the 31-nation alliance to “agree (to) a multi-year program where we help to "
        "move Ukraine to transition from old standards, equipment, procedures, doctrines to NATO standards and become "
        "fully interoperable with NATO.”",
        "NATO is also upgrading its relations with Ukraine. The NATO-Ukraine Commission, which will meet later "
        "Thursday, is set to be upgraded to a NATO-Ukraine Council, giving the country an equal seat at the table with "
        "the 31 allies.",
        "NATO has no official presence in Ukraine and as an organization provides only nonlethal support to Kyiv, "
        "although allies individually and in groups do supply weapons and ammunition.",
    ],
    "002_e0b0d12e770a7305": [
        'KYIV (Reuters) - Ukraine is working to secure "a strong and far-reaching step" towards membership of NATO '
        "at the military alliance's Washington summit in July, Ukraine's foreign minister said on Tuesday.",
        "The U.S. ambassador to NATO, Julianne Smith, said last month that she does not expect the alliance to issue a "
        "membership invitation to Ukraine at the upcoming summit.",
        "Asked about Ukraine's goals for the Washington summit during an online news conference, top diplomat Dmytro "
        'Kuleba said he would not go into detail about the deliberations, but that there was "very active '
        "engagement\" with NATO's leadership and allies.",
        '"We think that Ukraine meets the main criteria of membership, which is the capacity to defend NATO borders. '
        "That's what we are doing by defending Ukraine,\" he told reporters.",
        '"...let me say this, we are working hard to make a strong and far-reaching step towards Ukrainian membership '
        'in NATO at the Washington summit."',
        "Russia, which launched a full-scale invasion of Ukraine in February 2022, fiercely opposes Kyiv's long-term "
        "strategic ambition of joining the NATO military alliance.",
    ],
    "003_75066b03832c0bdd": [
        "NATO Secretary General Jens Stoltenberg described informal discussions within the Alliance on specific steps "
        'Ukraine should take to achieve NATO membership as "good".',
        "Source: Stoltenberg during the meeting of NATO members’ foreign ministers in Oslo, as reported by European "
        "Pravda",
        "Details: Asked whether the Allies would agree on any specific steps for Ukraine to take to achieve NATO "
        'membership, the Secretary General replied: "I am confident that we will find consensus on this issue. We '
        "already have good informal discussions. And we confirm the main point: Ukraine will become a member of this "
        'Alliance".',
        "Stoltenberg also pointed out that Ukraine has been moving towards NATO, shifting from Soviet to NATO "
        "standards.",
        "He said NATO has been helping Ukraine with this since 2014 and especially after Russia's full-scale invasion.",
        '"So, yes, we are moving in this direction, and yes, our allies see Ukraine as a NATO member," Stoltenberg '
        "explained.",
        "Background: On 1 June, NATO foreign ministers will discuss Ukraine's desire to join the Alliance and its "
        "further support in the war with the Russian Federation during a meeting in Oslo",
    ],
    "004_7c186e125f3c4461": [
        "Estonia plans on pushing the North Atlantic alliance to present Ukraine with a clear path to full NATO "
        "membership at an upcoming meeting, Bloomberg reported, noting that officials will also discuss upgrading "
        "Kiev’s status within the US-led military bloc.",
        "Estonian Foreign Minister Margus Tsahkna said Tallinn will raise the issue of membership at the NATO summit "
        "in Lithuania scheduled for July, telling Bloomberg “We must move forward to give a strong message.”",
        "“It’s not enough anymore just to repeat the already existing position that Ukraine is welcomed to NATO,” the "
        "FM added.",
        "Ukraine was first promised NATO membership at a 2008 summit in Bucharest, where another Russian neighbor, "
        "Georgia, was also told it could someday join the bloc. However, Moscow reacted sharply to the proposal, "
        "fearing Kiev’s membership could lead to a large Western military presence on its border. In the 15 years "
        "since, NATO has repeatedly stressed that its doors remain “open” for Ukraine – including as recently as last "
        "month – but officials have refused to take further steps to grant full membership, even as they admit other "
        "countries in Eastern Europe.",
        "Ukrainian Ambassador to NATO Natalia Galibarenko said the current policy is simply not good enough, stating "
        "“It is high time to define a clear path to membership for our country.”",
        "“We understand that NATO cannot name the exact date of future membership for Ukraine. However, just another "
        "confirmation of the ‘open door’ policy is not enough anymore,” she continued.",
        "Tsahkna suggested that, short of joining the alliance, Ukraine’s official status within NATO could be "
        "“upgraded,” but went on to argue that “the only opportunity to give the real guarantee for Ukraine after the "
        "war is NATO membership.” Asked if Kiev should be given security guarantees in the near-term, the Estonian "
        "diplomat agreed, but stressed that membership should be the main focus.",
        "During a press briefing alongside Ukrainian President Volodymyr Zelensky last month, NATO head Jens "
        "Stoltenberg said the country’s membership status will be on the table at the upcoming gathering. “The Vilnius "
        "Summit will be important for many reasons… President Zelensky will raise the issue of membership, of security "
        "guarantees, and this will be high on the agenda of the meeting,” he added, declaring “Ukraine’s future is in "
        "NATO. All Allies agree on that.”",
        "Stoltenberg went on to explain that Kiev will not receive membership at the Vilnius summit, however, saying "
        "the alliance would mostly discuss additional military aid “to ensure that Ukraine prevails” in its war with "
        "Russia.",
        "The White House has refused to say if it will support Ukraine’s ascension to the alliance at the upcoming "
        "summit. Late last month, press secretary Karine Jean-Pierre said the decision to admit new members is “up to "
        "NATO” and countries aspiring to join, adding that the administration’s current focus is on supplying Kiev "
        "with weapons to “push back against Russian aggression.”",
    ],
}

DATES = {
    "000_ff6882ef16d64a7d": "2023-06-16",
    "001_d33884d0ecc97606": "2023-06-15",
    "002_e0b0d12e770a7305": "2024-03-19",
    "003_75066b03832c0bdd": "2023-06-01",
    "004_7c186e125f3c4461": "2023-05-08",
}

TITLES = {
    "001_d33884d0ecc97606": "NATO debates ways to boost ties with Ukraine as war against Russian invasion drags on",
    "002_e0b0d12e770a7305": "Ukraine eyes 'strong and far-reaching step' towards NATO membership at July summit",
    "003_75066b03832c0bdd": "There are good informal discussions on Ukraine's steps towards NATO membership – NATO "
    "Secretary General",
    "004_7c186e125f3c4461": "NATO Considering ‘Upgrade’ for Ukraine Status",
}

SOURCES = {
    "000_ff6882ef16d64a7d": {"Euractiv"},
    "001_d33884d0ecc97606": {"The Independent"},
    "002_e0b0d12e770a7305": {"Reuters"},
    "003_75066b03832c0bdd": {"European Pravda", "Ukrainska Pravda"},
    "004_7c186e125f3c4461": {"Libertarian Institute", "The Libertarian Institute"},
}

AUTHORS = {
    "002_e0b0d12e770a7305": "Anastasiia Malenko",
    "004_7c186e125f3c4461": "Kyle Anzalone and Will Porter",
}

DOC_IDS = sorted(DATES)
# Written above as the files type them; articles are stored in one typographic form (rag/text/normalise.py).
CLUTTER = {k: [normalise_text(line) for line in v] for k, v in CLUTTER.items()}
BODY = {k: [normalise_text(paragraph) for paragraph in v] for k, v in BODY.items()}
TITLES = {k: normalise_text(v) if v else v for k, v in TITLES.items()}


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u00a0", " ")).strip()


@pytest.fixture(scope="module")
def articles() -> dict[str, Article]:
    return {doc_id: load_article(CORPUS / f"{doc_id}.txt") for doc_id in DOC_IDS}


@pytest.fixture(scope="module")
def passages(articles: dict[str, Article]) -> dict[str, list[Passage]]:
    return {d: chunk_article(a, chunk_size=110, chunk_overlap=25) for d, a in articles.items()}


def test_bundled_files_are_the_expected_five() -> None:
    assert sorted(p.stem for p in CORPUS.glob("*.txt")) == DOC_IDS


@pytest.mark.parametrize("doc_id", DOC_IDS)
def test_no_clutter_line_reaches_a_passage(
    doc_id: str, articles: dict[str, Article], passages: dict[str, list[Passage]]
) -> None:
    removed = {_squash(line) for line in articles[doc_id].removed_lines}
    for line in CLUTTER[doc_id]:
        for p in passages[doc_id]:
            assert line not in p.text, f"clutter {line!r} leaked into {p.passage_id}"
        assert line not in articles[doc_id].text
        assert _squash(line) in removed, f"{line!r} not recorded in removed_lines"


@pytest.mark.parametrize("doc_id", DOC_IDS)
def test_every_body_paragraph_survives(
    doc_id: str, articles: dict[str, Article], passages: dict[str, list[Passage]]
) -> None:
    text = articles[doc_id].text
    for paragraph in BODY[doc_id]:
        assert paragraph in text, f"body paragraph lost: {paragraph[:80]!r}"
        # and every one of its sentences is inside some passage, whole
        for start, end in split_sentences(paragraph):
            sentence = paragraph[start:end]
            assert any(sentence in p.text for p in passages[doc_id]), f"sentence not in any passage: {sentence!r}"


@pytest.mark.parametrize("doc_id", DOC_IDS)
def test_cleaned_text_is_the_body_in_order(doc_id: str, articles: dict[str, Article]) -> None:
    text = articles[doc_id].text
    positions = [text.index(p) for p in BODY[doc_id]]
    assert positions == sorted(positions)
    assert text.startswith(tuple(BODY[doc_id][:1])) or doc_id == "001_d33884d0ecc97606"  # 001 keeps its standfirst
    assert text.endswith(BODY[doc_id][-1])
    assert "\n\n\n" not in text


@pytest.mark.parametrize("doc_id", DOC_IDS)
def test_passages_are_exact_spans(
    doc_id: str, articles: dict[str, Article], passages: dict[str, list[Passage]]
) -> None:
    article = articles[doc_id]
    assert passages[doc_id], "no passages"
    for n, p in enumerate(passages[doc_id]):
        assert p.passage_id == f"{doc_id}#{n}" and p.ordinal == n
        assert article.text[p.start : p.end] == p.text
        assert len(p.text.split()) <= 110
        assert p.meta == article.meta


@pytest.mark.parametrize("doc_id", DOC_IDS)
def test_dates(doc_id: str, articles: dict[str, Article]) -> None:
    assert articles[doc_id].meta.date == DATES[doc_id]


@pytest.mark.parametrize("doc_id", sorted(TITLES))
def test_titles(doc_id: str, articles: dict[str, Article]) -> None:
    title = TITLES[doc_id]
    assert articles[doc_id].meta.title == title
    assert articles[doc_id].text.count(title) <= 1  # 004 repeats its title; at most one copy may remain


def test_000_has_no_title_line(articles: dict[str, Article]) -> None:
    # 000 starts straight with a date header; its first sentence is body, not a headline.
    assert articles["000_ff6882ef16d64a7d"].meta.title is None


@pytest.mark.parametrize("doc_id", DOC_IDS)
def test_sources(doc_id: str, articles: dict[str, Article]) -> None:
    assert articles[doc_id].meta.source in SOURCES[doc_id]


@pytest.mark.parametrize("doc_id", sorted(AUTHORS))
def test_authors(doc_id: str, articles: dict[str, Article]) -> None:
    assert articles[doc_id].meta.author == AUTHORS[doc_id]
