"""Notebook 15 in a real browser: Run All Cells, then the attack explorer reacts to every control."""
from widget_checks import Move, WidgetCase, all_of

CASE = WidgetCase(
    "15_robustness_faq_trends.ipynb", "attack", title=all_of("base, PGD-10 at ε = 0.10", "label"),
    readout=all_of("robust accuracy", "on 256 test images", "clean accuracy", "max |δ|"),
    moves=[Move("eps", 0.0, title="ε = 0.00", readout="max \\|δ\\|\\s*0.000"),
           Move("eps", 0.5, title="ε = 0.15", readout="max \\|δ\\|\\s*0.150"),
           Move("attack", "FGSM", title="^base, FGSM at ε = 0.15"),
           Move("model", "pruned 90 %", title="^pruned 90 %, FGSM"),
           Move("model", "int8 PTQ", title="^int8 PTQ, FGSM"),
           Move("attack", "PGD-10", title="^int8 PTQ, PGD-10"),
           Move("image", 0.5, title=r"label \d\)$", check=lambda b, a: b.title != a.title or b.readout != a.readout)])


def test_15_attack_explorer_reacts_to_eps_attack_model_and_image(check_widget):
    check_widget(CASE)
