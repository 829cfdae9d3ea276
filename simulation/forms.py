"""The form that starts a simulation run from the web: agents, pool, policy and sizes."""
from __future__ import annotations

import json

from django import forms

from annotation.models import Dataset

from .models import CandidateMode, SplitChoice
from .policies import POLICIES, PolicyError, parse_policy_params

PARAMETRIC_ROWS = 3
PARAMETRIC_DEFAULTS = [
    ("credulous", 0.9, 0.7, 0.8),
    ("sceptical", 0.6, 0.2, 0.7),
    ("", None, None, None),
]


class SimulationRunForm(forms.Form):
    name = forms.CharField(max_length=200)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"))
    split = forms.ChoiceField(choices=SplitChoice.choices, initial=SplitChoice.TEST,
                              help_text="The claims trajectories draw from; FrameRef used the test split.")
    personas = forms.ModelMultipleChoiceField(
        queryset=None, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Personas with a finished score table for this dataset and split.")
    studies = forms.ModelMultipleChoiceField(
        queryset=None, required=False, widget=forms.CheckboxSelectMultiple,
        label="Human-calibrated agents",
        help_text="One agent per study: its raters' acceptance per framing and truth, and their confidence.")
    by_familiarity = forms.BooleanField(
        required=False,
        label="Human agents judge each claim at the familiarity its raters reported for it "
              "(acceptance and confidence of the raters at that familiarity level)")
    decision = forms.CharField(
        required=False, initial="argmax", max_length=40, label="Personas' decision rule",
        help_text="argmax (the more probable label), frameref (sampled at temperature 0.6, top-p 0.9: "
                  "the generation config FrameRef's model shipped) or sample:T:P. Applies to every "
                  "persona agent; a JSON agent's own \"decision\" overrides it.")
    oracle = forms.BooleanField(required=False, initial=True, label="Oracle (always right, confidence 1)")
    agents_json = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), label="Agents as JSON (optional)",
        help_text='Replaces the choices above, e.g. [{"kind": "persona", "persona": "baseline"}, '
                  '{"kind": "parametric", "name": "p", "accept": {"SUPPORTS": 0.8, "REFUTES": 0.3}, '
                  '"confidence": 0.7}, {"kind": "oracle"}].')
    policy = forms.ChoiceField(choices=[(name, f"{name}: {text}") for name, (text, _) in POLICIES.items()],
                               initial="frameref")
    policy_params = forms.CharField(
        required=False, label="Policy parameters",
        help_text="name=value pairs separated by commas, e.g. top_k=5, temperature=0.1 (defaults otherwise).")
    candidate_mode = forms.ChoiceField(choices=CandidateMode.choices, initial=CandidateMode.EXACT)
    trajectories = forms.IntegerField(min_value=1, initial=100)
    steps = forms.IntegerField(min_value=1, initial=20, help_text="At most the pool's number of base claims.")
    runs = forms.IntegerField(min_value=1, initial=3, help_text="Independent repetitions (FrameRef: 3).")
    seed = forms.IntegerField(min_value=0, initial=0)
    shards = forms.IntegerField(min_value=1, max_value=256, initial=4,
                                help_text="Chunks of trajectories that workers run in parallel; "
                                          "the results do not depend on it.")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        from annotation.studies.selectors import studies_visible_to
        from modeling.models import Persona

        self.fields["personas"].queryset = Persona.objects.filter(status=Persona.Status.SUCCEEDED).order_by("name")
        self.fields["studies"].queryset = studies_visible_to(user).order_by("name")
        for row in range(PARAMETRIC_ROWS):
            name, true_rate, false_rate, confidence = PARAMETRIC_DEFAULTS[row]
            self.fields[f"parametric_{row}_name"] = forms.CharField(
                required=False, initial=name, label=f"Parametric agent {row + 1}: name")
            self.fields[f"parametric_{row}_accept_true"] = forms.FloatField(
                required=False, min_value=0, max_value=1, initial=true_rate, label="P(accept | true claim)")
            self.fields[f"parametric_{row}_accept_false"] = forms.FloatField(
                required=False, min_value=0, max_value=1, initial=false_rate, label="P(accept | false claim)")
            self.fields[f"parametric_{row}_confidence"] = forms.FloatField(
                required=False, min_value=0, max_value=1, initial=confidence, label="confidence")
            for part in ("name", "accept_true", "accept_false", "confidence"):
                field = self.fields[f"parametric_{row}_{part}"]
                # The table's column headers label these for sighted users; this for screen readers.
                field.widget.attrs["aria-label"] = f"parametric agent {row + 1}: {field.label}"

    def parametric_rows(self):
        return [[self[f"parametric_{row}_{part}"] for part in ("name", "accept_true", "accept_false", "confidence")]
                for row in range(PARAMETRIC_ROWS)]

    def clean_policy_params(self):
        try:
            return parse_policy_params([p for p in self.cleaned_data["policy_params"].split(",") if p.strip()])
        except PolicyError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_decision(self):
        from modeling.decisions import DecisionRuleError, parse_decision

        try:
            return parse_decision(self.cleaned_data["decision"] or "argmax").text()
        except DecisionRuleError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_agents_json(self):
        text = self.cleaned_data["agents_json"].strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc}") from None
        if not isinstance(value, list):
            raise forms.ValidationError("give a JSON list of agent objects")
        return value

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if data.get("agents_json") is not None:
            data["agents"] = data["agents_json"]
            return data
        agents: list[dict] = [{"kind": "persona", "persona": p.pk, "name": p.name} for p in data["personas"]]
        agents += [{"kind": "human", "study": s.pk, "by_familiarity": data["by_familiarity"]}
                   for s in data["studies"]]
        for row in range(PARAMETRIC_ROWS):
            name = data.get(f"parametric_{row}_name", "").strip()
            numbers = [data.get(f"parametric_{row}_{part}") for part in ("accept_true", "accept_false", "confidence")]
            if not name and all(n is None for n in numbers):
                continue
            if not name or any(n is None for n in numbers):
                self.add_error(f"parametric_{row}_name",
                               "give a name and all three numbers, or leave the whole row empty")
                continue
            agents.append({"kind": "parametric", "name": name,
                           "accept": {"SUPPORTS": numbers[0], "REFUTES": numbers[1]}, "confidence": numbers[2]})
        if data["oracle"]:
            agents.append({"kind": "oracle"})
        if not agents and not self.errors:
            raise forms.ValidationError("choose at least one agent")
        data["agents"] = agents
        return data
