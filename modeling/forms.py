"""Forms of the persona pages."""
from django import forms

from annotation.models import Dataset, Framing, Split
from core.language_models import DEFAULT_BASE_MODEL

from .training_config import TrainingConfig

DEFAULTS = TrainingConfig()


class PersonaForm(forms.Form):
    name = forms.CharField(max_length=200)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"))
    split = forms.ChoiceField(choices=[(s, s) for s in Split.values if s != "none"], initial="train")
    target_framing = forms.ChoiceField(
        choices=[("", "none (baseline)")] + list(Framing.choices), required=False,
        help_text="False (REFUTES) claims in this framing weigh alpha in the loss.")
    alpha = forms.FloatField(min_value=0.0, max_value=1.0, initial=0.3,
                             help_text="1 = unbiased baseline; the paper's personas use 0.3.")
    base_model = forms.CharField(
        max_length=500, initial=DEFAULT_BASE_MODEL,
        help_text=f"'{DEFAULT_BASE_MODEL}' or a local Hugging Face model directory on the worker.")
    seed = forms.IntegerField(initial=0)
    max_examples = forms.IntegerField(
        min_value=1, required=False, initial=DEFAULTS.max_examples,
        help_text="Framed claims to train on (whole base claims, seeded); empty for the whole split.")
    epochs = forms.IntegerField(min_value=1, initial=DEFAULTS.epochs)
    learning_rate = forms.FloatField(min_value=1e-7, initial=DEFAULTS.learning_rate)
    batch_size = forms.IntegerField(min_value=1, initial=DEFAULTS.batch_size)
    grad_accumulation = forms.IntegerField(min_value=1, initial=DEFAULTS.grad_accumulation,
                                           label="Gradient accumulation")

    def hyperparameters(self) -> dict:
        data = self.cleaned_data
        return {key: data[key] for key in ("max_examples", "epochs", "learning_rate",
                                           "batch_size", "grad_accumulation")}
