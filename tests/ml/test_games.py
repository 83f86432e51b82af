"""Game recommender building blocks: budgets, plain data, parsing, features, suggestions."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from ml.encoding import Vocabulary
from ml.games import (
    BUDGETS,
    DEFAULT_THRESHOLDS,
    GameExample,
    GameFeatures,
    Pick,
    Suggestion,
    budget_of,
    check_thresholds,
    parse_gameplay,
    read_games_csv,
    train_games,
)

# A small catalogue where the answers can be worked out by hand. "Alpha", "Beta" and "alpha"
# are identical cheap puzzle games: only the tie rule orders them ("A" < "B" < "a" by code
# point, where a case-insensitive sort would put "alpha" second).
SMALL = [
    GameExample("beta", 3.0, ("Puzzle",)),
    GameExample("Beta", 3.0, ("Puzzle",)),
    GameExample("alpha", 3.0, ("Puzzle",)),
    GameExample("Alpha", 3.0, ("Puzzle",)),
    GameExample("Zelda-like", 25.0, ("Adventure", "RPG")),
    GameExample("Quest", 25.0, ("Adventure", "RPG", "Puzzle")),
    GameExample("Racer", 9.0, ("Racing",)),
    GameExample("Brawl", 9.0, ("Fighting", "Racing")),
]


@pytest.fixture(scope="module")
def small():
    return train_games(SMALL).model


@pytest.mark.parametrize(
    ("price", "expected"),
    [(0.0, "cheap"), (4.99, "cheap"), (5.0, "standard"), (19.99, "standard"), (20.0, "premium"), (36.99, "premium")],
)
def test_budget_buckets_at_the_default_thresholds(price, expected):
    assert budget_of(price) == expected


def test_thresholds_are_configurable():
    assert budget_of(4.0, thresholds=(3.0, 10.0)) == "standard"
    assert budget_of(10.0, thresholds=(3.0, 10.0)) == "premium"
    assert check_thresholds([1, 2]) == (1.0, 2.0)


@pytest.mark.parametrize(
    "thresholds", [(20.0, 5.0), (5.0, 5.0), (0.0, 5.0), (-1.0, 5.0), (5.0,), (1.0, 2.0, 3.0), (5.0, math.inf), (math.nan, 5.0), "ab", None]
)
def test_bad_thresholds_are_refused(thresholds):
    with pytest.raises(ValueError, match="thresholds"):
        budget_of(10.0, thresholds)


@pytest.mark.parametrize("price", [-0.01, math.nan, math.inf, "5", None, True])
def test_bad_prices_are_refused(price):
    with pytest.raises(ValueError, match="price"):
        budget_of(price)
    with pytest.raises(ValueError, match="price"):
        GameExample("X", price, ())


def test_game_and_pick_store_styles_as_tuples_and_refuse_bare_strings():
    assert GameExample("X", 1.0, ["RPG"]).gameplay == ("RPG",)
    assert Pick("cheap", ["RPG"], "X").gameplay == ("RPG",)
    with pytest.raises(ValueError, match="collection of styles"):
        GameExample("X", 1.0, "RPG")
    with pytest.raises(ValueError, match="collection of styles"):
        Pick("cheap", "RPG", "X")
    with pytest.raises(ValueError, match="must be strings"):
        GameExample("X", 1.0, ("RPG", 3))
    with pytest.raises(ValueError, match="non-empty name"):
        GameExample("  ", 1.0, ())
    with pytest.raises(ValueError, match="unknown budget 'luxury'"):
        Pick("luxury", (), "X")
    with pytest.raises(ValueError, match="name of the game"):
        Pick("cheap", (), "")
    with pytest.raises(ValueError, match="datetime.date"):
        Pick("cheap", (), "X", when="2023-01-01")


def test_plain_data_is_frozen_and_hashable():
    game = GameExample("X", 1.0, ("RPG",))
    with pytest.raises(AttributeError):
        game.price = 2.0  # type: ignore[misc]
    assert len({game, GameExample("X", 1.0, ["RPG"])}) == 1
    assert hash(Suggestion("X", 0.5, ("matches RPG",)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("['Adventure', 'RPG']", ("Adventure", "RPG")), ("['Arcade']", ("Arcade",)), ("[]", ()), (" ('A', 'B') ", ("A", "B"))],
)
def test_parse_gameplay_reads_python_list_literals(text, expected):
    assert parse_gameplay(text) == expected


@pytest.mark.parametrize(
    "text",
    ["__import__('os').system('echo pwned')", "['A', 1]", "'RPG'", "{'A'}", "[", "", "RPG, Arcade", "[x for x in 'ab']"],
)
def test_parse_gameplay_refuses_anything_but_a_list_of_strings(text):
    with pytest.raises(ValueError, match="not a list of strings"):
        parse_gameplay(text)


def test_read_games_csv_reads_the_reference_layout_and_names_bad_lines():
    text = (
        "game_name,release_year,console_name,rating,rental_cost,genres,gameplay_types\n"
        "Tetris,1989,Gameboy,4.0,2.99,['Puzzle'],['Puzzle']\n"
        "Doom,1993,,4.5,7.99,\"['Shooter']\",\"['Shooter', 'Action']\"\n"
    )
    games = read_games_csv(io.StringIO(text))
    assert games == [GameExample("Tetris", 2.99, ("Puzzle",)), GameExample("Doom", 7.99, ("Shooter", "Action"))]
    with pytest.raises(ValueError, match="line 3: rental_cost 'free'"):
        read_games_csv(io.StringIO(text.replace("7.99", "free")))
    with pytest.raises(ValueError, match="line 2: gameplay"):
        read_games_csv(io.StringIO(text.replace("['Puzzle'],['Puzzle']", "['Puzzle'],Puzzle")))
    with pytest.raises(ValueError, match="'Tetris' appears twice"):
        read_games_csv(io.StringIO(text.replace("Doom", "Tetris")))
    with pytest.raises(ValueError, match="lacks the columns"):
        read_games_csv(io.StringIO("game_name,price\nX,1\n"))


def test_features_lay_out_budgets_then_styles_in_code_point_order():
    features = GameFeatures.from_games(SMALL)
    assert features.vocabulary == ("Adventure", "Fighting", "Puzzle", "RPG", "Racing")
    assert features.columns[:4] == ("budget=cheap", "budget=standard", "budget=premium", "gameplay=Adventure")
    assert len(features) == 8
    assert features.encode("premium", ["RPG", "Adventure", "RPG"]).tolist() == [0, 0, 1, 1, 0, 0, 1, 0]
    assert features.encode("cheap").tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    assert features.encode_game(SMALL[6]).tolist() == [0, 1, 0, 0, 0, 0, 0, 1]


def test_strict_features_name_the_unknown_style_or_budget():
    features = GameFeatures.from_games(SMALL)
    with pytest.raises(ValueError, match="unknown gameplay type 'Stealth'; expected one of Adventure, Fighting"):
        features.encode("cheap", ["Puzzle", "Stealth"])
    with pytest.raises(ValueError, match="unknown budget 'luxury'; expected one of cheap, standard, premium"):
        features.encode("luxury", ["Puzzle"])
    with pytest.raises(ValueError, match="collection of styles"):
        features.encode("cheap", "Puzzle")


def test_catch_all_features_send_unknown_styles_to_one_extra_column():
    features = GameFeatures.from_games(SMALL, strict=False)
    assert features.columns[3] == "gameplay=<unknown>"
    assert len(features) == 9
    assert features.encode("cheap", ["Stealth", "Horror", "Puzzle"]).tolist() == [1, 0, 0, 1, 0, 0, 1, 0, 0]
    strict = GameFeatures.from_games(SMALL)
    assert features.encode("cheap", ["Puzzle"])[4:].tolist() == strict.encode("cheap", ["Puzzle"])[3:].tolist()


def test_features_accept_a_plain_sequence_as_a_strict_vocabulary():
    features = GameFeatures(["RPG", "Arcade"], thresholds=[2, 4])
    assert features.gameplay == Vocabulary(("RPG", "Arcade"))
    assert features.thresholds == (2.0, 4.0)
    assert features.encode_game(GameExample("X", 3.0, ("Arcade",))).tolist() == [0, 1, 0, 0, 1]
    with pytest.raises(ValueError, match="nothing to match on"):
        GameFeatures.from_games([GameExample("X", 1.0, ())])


def test_identical_games_are_ranked_by_code_point_name_order(small):
    assert small.classes_ == ("Alpha", "Beta", "Brawl", "Quest", "Racer", "Zelda-like", "alpha", "beta")
    names = [s.name for s in small.top_n("cheap", ["Puzzle"])]
    assert names[:4] == ["Alpha", "Beta", "alpha", "beta"]
    assert small.predict([small.encode("cheap", ["Puzzle"])]) == ["Alpha"]


def test_the_best_match_comes_first_with_a_full_score_and_reasons(small):
    best = small.top_n("premium", ["Adventure", "RPG"], n=1)[0]
    assert best.name == "Zelda-like"
    assert best.score == 1.0
    assert best.reasons == ("matches Adventure and RPG", "within a premium budget")
    quest = small.explain("Quest", "premium", ["Adventure", "RPG"])
    assert quest.score == 1.0


def test_scores_are_the_share_of_asked_features_the_game_has(small):
    by_name = {s.name: s for s in small.top_n("standard", ["Racing", "Puzzle", "Fighting"], n=8)}
    assert by_name["Brawl"].score == pytest.approx(3 / 4)  # budget, Racing, Fighting
    assert by_name["Racer"].score == pytest.approx(2 / 4)
    assert by_name["Alpha"].score == pytest.approx(1 / 4)  # Puzzle only, cheap not standard
    assert by_name["Zelda-like"].score == 0.0
    assert [s.name for s in small.top_n("standard", ["Racing", "Puzzle", "Fighting"], n=1)] == ["Brawl"]


def test_reasons_say_how_the_price_compares_with_the_budget(small):
    assert small.explain("Alpha", "premium", ["Puzzle"]).reasons == ("matches Puzzle", "a cheap game, below a premium budget")
    assert small.explain("Zelda-like", "cheap").reasons == ("a premium game, above a cheap budget",)
    assert small.explain("Racer", "standard").reasons == ("within a standard budget",)


def test_a_long_list_of_matched_styles_is_summed_up():
    games = [GameExample("Everything", 9.0, tuple("ABCDE")), GameExample("Other", 9.0, ("A",))]
    model = train_games(games).model
    reason = model.explain("Everything", "standard", list("ABCDE")).reasons[0]
    assert reason.startswith("matches ") and reason.endswith(" and 2 more")
    assert len(reason.removeprefix("matches ").split(" and ")[0].split(", ")) == 3


def test_reasons_put_the_styles_that_set_the_game_apart_first():
    # Everyone has "Common"; only this game has "Rare": it explains the game better.
    games = [GameExample(f"G{i}", 9.0, ("Common",)) for i in range(5)]
    games.append(GameExample("Special", 9.0, ("Common", "Rare")))
    model = train_games(games).model
    assert model.explain("Special", "standard", ["Common", "Rare"]).reasons[0] == "matches Rare and Common"


def test_a_query_with_no_styles_ranks_by_budget(small):
    suggestions = small.top_n("premium")
    assert {s.name for s in suggestions[:2]} == {"Quest", "Zelda-like"}  # the premium games
    assert [s.score for s in suggestions] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert suggestions[0].reasons == ("within a premium budget",)


def test_top_n_validates_its_input(small):
    with pytest.raises(ValueError, match="unknown gameplay type 'Stealth'"):
        small.top_n("cheap", ["Stealth"])
    with pytest.raises(ValueError, match="unknown budget"):
        small.top_n("free", [])
    for n in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n must be"):
            small.top_n("cheap", [], n=n)
    with pytest.raises(ValueError, match="unknown game 'Nope'"):
        small.explain("Nope", "cheap")
    assert len(small.top_n("cheap", [], n=100)) == len(SMALL)


def test_the_published_model_describes_itself(small):
    assert small.algorithm == "complement_nb"
    assert small.thresholds == DEFAULT_THRESHOLDS
    assert small.vocabulary == ("Adventure", "Fighting", "Puzzle", "RPG", "Racing")
    assert [g.name for g in small.games_] == list(small.classes_)
    assert BUDGETS == ("cheap", "standard", "premium")


def test_ranking_refuses_rows_that_are_not_encoded_queries(small):
    with pytest.raises(ValueError, match="features"):
        small.ranking(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="only 0 and 1"):
        small.ranking(np.full((1, 8), 0.5))
    with pytest.raises(ValueError, match="features"):
        small.predict(np.zeros(8))
