"""The plug-in registry: lookups, config strings, every error path, spec round trips."""

from __future__ import annotations

import sys
import textwrap

import pytest

from marl_tr.divergences import DIVERGENCES, KL, Divergence, Wasserstein1
from marl_tr.registry import (
    Plugin,
    Registry,
    UnknownNameError,
    format_value,
    parse_kwargs,
    parse_value,
    split_spec,
)

USER_MODULE = '''
from marl_tr.divergences import KL, Divergence


class TotalMeanShift(Divergence):
    """A user's divergence: |mean_new - mean_old| summed over dimensions, raised to p."""

    def __init__(self, power: float = 1.0) -> None:
        if power <= 0:
            raise ValueError(f"power must be > 0, got {power!r}")
        self.power = power

    def compute(self, old, new):
        return (new.mean - old.mean).abs().sum(-1) ** self.power


class TunedKL(KL):
    """A subclass of a registered class, itself not registered."""


NOT_A_CLASS = 3
'''


@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    """A package ``user_pkg.divs`` and a top-level module ``user_divs`` with the same code."""
    (tmp_path / "user_pkg").mkdir()
    (tmp_path / "user_pkg" / "__init__.py").write_text("")
    (tmp_path / "user_pkg" / "divs.py").write_text(textwrap.dedent(USER_MODULE))
    (tmp_path / "user_divs.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("user_pkg", "user_pkg.divs", "user_divs"):
        sys.modules.pop(name, None)


class Widget(Plugin):
    """A toy plug-in kind for registry mechanics."""


@pytest.fixture
def widgets():
    registry: Registry[Widget] = Registry("widget", Widget)

    @registry.register("gear", aliases=("cog",))
    class Gear(Widget):
        def __init__(self, teeth: int = 12, label: str = "plain") -> None:
            if teeth < 1:
                raise ValueError(f"teeth must be >= 1, got {teeth}")
            self.teeth = teeth
            self.label = label

    @registry.register("spring")
    class Spring(Widget):
        def __init__(self, **options) -> None:
            self.options = options

    return registry


# -- unknown names ---------------------------------------------------------------------------
def test_unknown_name_is_both_key_and_value_error_with_suggestion_and_list():
    with pytest.raises(UnknownNameError) as caught:
        DIVERGENCES.build("wasserstien")
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert "Unknown divergence 'wasserstien'. Did you mean 'wasserstein'?" in message
    assert f"Available: {', '.join(DIVERGENCES.names())} (or 'package.module:Class')" in message
    assert "Available: hellinger, js, kl, tv, w1, w1_bound, w2" in message
    with pytest.raises(KeyError, match="Did you mean 'kl'"):
        DIVERGENCES.get("kll")
    with pytest.raises(ValueError, match=r"Unknown divergence 'zzz'\. Available:"):
        DIVERGENCES.build("zzz")  # nothing close: no suggestion


def test_lookup_by_alias_and_case_insensitively():
    assert DIVERGENCES.get("wasserstein") is Wasserstein1
    assert DIVERGENCES.get(" KL ") is KL
    assert "Jensen_Shannon" in DIVERGENCES and "nope" not in DIVERGENCES and 3 not in DIVERGENCES
    with pytest.raises(TypeError, match="A divergence name must be a string, got int"):
        DIVERGENCES.get(3)  # type: ignore[arg-type]


def test_registry_listing(widgets):
    assert widgets.names() == ["gear", "spring"]
    assert list(widgets) == ["gear", "spring"] and len(widgets) == 2
    assert widgets.aliases() == {"cog": "gear"}
    assert repr(widgets) == "Registry('widget', names=['gear', 'spring'])"
    assert widgets.get("cog").registry_name == "gear"


# -- registration ------------------------------------------------------------------------------
def test_a_taken_name_or_alias_is_refused(widgets):
    with pytest.raises(ValueError, match=r"The widget name 'gear' is already taken by .*Gear"):
        widgets.register("GEAR")(type("Other", (Widget,), {}))
    with pytest.raises(ValueError, match=r"The widget name 'cog' is already taken by .*Gear"):
        widgets.register("new", aliases=("cog",))(type("Other", (Widget,), {}))
    assert "new" not in widgets  # nothing half-registered


def test_registration_needs_a_subclass_and_a_name(widgets):
    with pytest.raises(TypeError, match="Cannot register <class 'int'> as a widget: it must"):
        widgets.register("number")(int)
    with pytest.raises(ValueError, match="A registry name must be a non-empty string, got ' '"):
        widgets.register(" ")(type("Blank", (Widget,), {}))


# -- keywords and values -----------------------------------------------------------------------
def test_unknown_keyword_lists_the_accepted_ones():
    with pytest.raises(ValueError, match=r"Unknown keyword\(s\) 'p' for divergence 'kl'\. "
                                         r"Accepted: direction"):
        DIVERGENCES.build("kl:p=2")
    with pytest.raises(ValueError, match=r"Unknown keyword\(s\) 'colour', 'size' for divergence"
                                         r" 'hellinger'\. Accepted: \(none\)"):
        DIVERGENCES.build("hellinger", size=1, colour="red")


def test_a_bad_value_names_it_and_the_accepted_keywords():
    with pytest.raises(ValueError, match=r"Cannot build divergence 'w1' with \{'spacing': -2\}: "
                                         r"spacing must be > 0.*Accepted keywords: cost, "
                                         r"embedding, ground, method, n_samples, seed, spacing"):
        DIVERGENCES.build("w1:spacing=-2")


def test_var_keyword_plugins_take_any_keyword(widgets):
    assert widgets.build("spring:stiffness=3.5,shape=coil").options == {
        "stiffness": 3.5, "shape": "coil"
    }


def test_config_string_and_call_keywords_merge_and_the_call_wins():
    built = DIVERGENCES.build("w1:method=pot,n_samples=32", n_samples=64)
    assert built == Wasserstein1(method="pot", n_samples=64)


def test_name_with_arguments_but_no_equals_sign():
    with pytest.raises(ValueError, match=r"Bad arguments 'ground' for divergence 'w1': expected "
                                         r"'w1:key=value"):
        DIVERGENCES.build("w1:ground")


# -- user classes by import path ---------------------------------------------------------------
@pytest.mark.parametrize("module", ["user_pkg.divs", "user_divs"])
def test_import_path_builds_a_user_class_without_registering_it(user_modules, module):
    registered_before = DIVERGENCES.names()
    plain = DIVERGENCES.build(f"{module}:TotalMeanShift")
    assert type(plain).__name__ == "TotalMeanShift" and plain.power == 1.0
    tuned = DIVERGENCES.build(f"{module}:TotalMeanShift:power=2")
    assert tuned.power == 2
    assert DIVERGENCES.build(tuned.spec()) == tuned
    assert "totalmeanshift" not in DIVERGENCES
    assert DIVERGENCES.names() == registered_before
    with pytest.raises(ValueError, match=r"power must be > 0, got -1"):
        DIVERGENCES.build(f"{module}:TotalMeanShift:power=-1")


def test_bad_import_paths(user_modules):
    with pytest.raises(UnknownNameError, match=r"Cannot import module 'no_such_pkg\.mod' for "
                                               r"divergence 'no_such_pkg\.mod:Div'"):
        DIVERGENCES.build("no_such_pkg.mod:Div")
    with pytest.raises(UnknownNameError, match=r"Module 'user_divs' has no attribute 'Missing'"):
        DIVERGENCES.build("user_divs:Missing")
    with pytest.raises(TypeError, match=r"'user_divs:NOT_A_CLASS' is not a Divergence subclass"):
        DIVERGENCES.build("user_divs:NOT_A_CLASS")
    with pytest.raises(TypeError, match=r"'marl_tr.registry:Registry' is not a Divergence"):
        DIVERGENCES.build("marl_tr.registry:Registry")


def test_unregistered_subclass_of_a_registered_class_keeps_its_own_spec(user_modules):
    import user_divs

    tuned = user_divs.TunedKL(direction="reverse")
    assert tuned.spec() == "user_divs:TunedKL:direction=reverse"
    rebuilt = DIVERGENCES.build(tuned.spec())
    assert type(rebuilt) is user_divs.TunedKL and rebuilt == tuned


# -- other spec forms -------------------------------------------------------------------------
def test_instance_passes_through_and_refuses_keywords():
    divergence = KL(direction="reverse")
    assert DIVERGENCES.build(divergence) is divergence
    with pytest.raises(ValueError, match=r"Cannot apply keyword arguments \['direction'\] to an "
                                         r"already built divergence"):
        DIVERGENCES.build(divergence, direction="forward")


def test_mapping_form():
    assert DIVERGENCES.build({"name": "w1", "ground": "l2"}) == Wasserstein1(ground="l2")
    assert DIVERGENCES.build({"name": "kl"}, direction="reverse") == KL(direction="reverse")
    with pytest.raises(ValueError, match=r"A divergence mapping needs a 'name' key, got "
                                         r"\['ground'\]"):
        DIVERGENCES.build({"ground": "l2"})


def test_class_form_and_its_base_check():
    assert DIVERGENCES.build(KL, direction="reverse") == KL(direction="reverse")
    with pytest.raises(TypeError, match=r"<class 'dict'> is not a Divergence subclass"):
        DIVERGENCES.build(dict)
    with pytest.raises(TypeError, match=r"Cannot build a divergence from float 1\.5"):
        DIVERGENCES.build(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", DIVERGENCES.names())
def test_spec_round_trip_for_every_registered_divergence(name):
    default = DIVERGENCES.build(name)
    assert DIVERGENCES.build(default.spec()) == default
    assert DIVERGENCES.build(repr(default.spec())[1:-1]) == default
    assert DIVERGENCES.build({"name": name, **default.config()}) == default
    assert hash(DIVERGENCES.build(default.spec())) == hash(default)


def test_spec_round_trip_with_non_default_options():
    for divergence in (
        KL(direction="reverse"),
        Wasserstein1(method="pot", ground="l2", spacing=0.25, n_samples=17, seed=3),
        DIVERGENCES.build("js:method=jeffreys_bound,n_nodes=9"),
        DIVERGENCES.build("w2:spacing=1e-3"),
    ):
        assert DIVERGENCES.build(divergence.spec()) == divergence
        assert DIVERGENCES.build(divergence.spec()) != DIVERGENCES.build(divergence.registry_name)


def test_plugin_repr_config_and_equality(widgets):
    gear = widgets.build("cog:teeth=30,label='two words'")
    assert repr(gear) == "Gear(teeth=30, label='two words')"
    assert gear.config() == {"teeth": 30, "label": "two words"}
    assert gear.spec() == "gear:teeth=30,label='two words'"
    assert widgets.build(gear.spec()) == gear
    assert gear != widgets.build("gear") and gear != "gear"
    with pytest.raises(ValueError, match=r"Cannot build widget 'gear' with \{'teeth': 0\}: "
                                         r"teeth must be >= 1, got 0"):
        widgets.build("gear:teeth=0")


def test_a_nested_plugin_round_trips_through_a_quoted_spec(widgets):
    @widgets.register("holder")
    class Holder(Widget):
        def __init__(self, divergence: str | Divergence = "kl", sizes: tuple = (1,)) -> None:
            self.divergence = DIVERGENCES.build(divergence)
            self.sizes = sizes

    holder = widgets.build("holder", divergence=KL(direction="reverse"), sizes=(1, 3, 1))
    assert holder.spec() == "holder:divergence='kl:direction=reverse',sizes=(1, 3, 1)"
    assert widgets.build(holder.spec()) == holder
    with pytest.raises(UnknownNameError, match=r"^Unknown divergence 'kk'\. Did you mean 'kl'"):
        widgets.build("holder:divergence=kk")  # raised inside the constructor, not rewrapped
    assert isinstance(widgets.build("holder").divergence, KL)


# -- the config-string grammar ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True), ("False", False), ("none", None), ("null", None), ("1e-3", 1e-3),
        ("-2", -2), ("(1, 3, 1)", (1, 3, 1)), ("'l1'", "l1"), ("l1", "l1"),
        ("closed_form", "closed_form"), (" [1, 2] ", [1, 2]), ("a b", "a b"),
    ],
)
def test_parse_value(text, value):
    assert parse_value(text) == value


def test_parse_kwargs_and_its_errors():
    assert parse_kwargs("a=1, b=(1, 2),c=l1,d='x,y'") == {
        "a": 1, "b": (1, 2), "c": "l1", "d": "x,y"
    }
    assert parse_kwargs("  ") == {}
    with pytest.raises(ValueError, match=r"Bad argument 'a' in 'a,b=2': expected key=value"):
        parse_kwargs("a,b=2")
    with pytest.raises(ValueError, match=r"Bad keyword '1a' in '1a=2': not a Python identifier"):
        parse_kwargs("1a=2")
    with pytest.raises(ValueError, match=r"Keyword 'a' given twice in 'a=1,a=2'"):
        parse_kwargs("a=1,a=2")


@pytest.mark.parametrize(
    ("spec", "target", "kwargs"),
    [
        ("kl", "kl", {}),
        ("w1:ground=l1", "w1", {"ground": "l1"}),
        ("pkg.mod:Cls", "pkg.mod:Cls", {}),
        ("pkg.mod:Cls:p=2,q=x", "pkg.mod:Cls", {"p": 2, "q": "x"}),
        ("mod:Cls:p=2", "mod:Cls", {"p": 2}),
    ],
)
def test_split_spec(spec, target, kwargs):
    assert split_spec(spec) == (target, kwargs)


@pytest.mark.parametrize(
    "value", ["l1", "closed_form", "two words", "1e3", "true", "", 0.1, 1e-300, -3, (1, 2.5),
              [1, "a"], None, True]
)
def test_format_value_reads_back(value):
    assert parse_value(format_value(value)) == value


def test_divergence_base_is_enforced_for_registration():
    with pytest.raises(TypeError, match="it must subclass Divergence"):
        DIVERGENCES.register("not_a_divergence")(Widget)
    assert issubclass(KL, Divergence)
