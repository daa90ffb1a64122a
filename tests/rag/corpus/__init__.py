"""A small corpus with known answers, for retrieval-quality tests and benchmarks.

Each question names the document that answers it. Some questions share rare keywords with the
answer (keyword search shines), others only paraphrase it (vector search shines).
"""

DOCUMENTS = {
    "volcano": "# Volcanoes\n\nMagma rises through the crust and erupts as lava. Stratovolcanoes such as Mount Fuji are built from layers of ash and hardened lava.",
    "coffee": "# Coffee\n\nArabica beans grow at high altitude and give a sweeter, more acidic cup than robusta. Roasting caramelises the sugars inside the bean.",
    "tides": "# Tides\n\nThe gravitational pull of the moon and the sun raises the oceans twice a day. Spring tides happen when sun and moon align.",
    "bees": "# Honeybees\n\nWorker bees perform a waggle dance to tell the hive where flowers are. The queen lays up to two thousand eggs a day.",
    "rust": "# Corrosion\n\nIron oxidises in the presence of water and oxygen, forming rust. Galvanising coats steel in zinc to prevent it.",
    "sleep": "# Sleep\n\nDuring REM sleep the brain consolidates memories and most vivid dreams occur. Adults need seven to nine hours a night.",
    "bridges": "# Suspension bridges\n\nThe deck hangs from vertical cables attached to main cables draped between towers. The Golden Gate Bridge opened in 1937.",
    "yeast": "# Bread\n\nYeast ferments sugars and releases carbon dioxide, which makes dough rise. Sourdough uses wild yeast and lactobacilli.",
    "aurora": "# Auroras\n\nCharged particles from the solar wind collide with the upper atmosphere and make it glow green and purple near the poles.",
    "glaciers": "# Glaciers\n\nCompacted snow turns into ice that flows downhill under its own weight, carving U-shaped valleys and fjords.",
    "vaccines": "# Vaccines\n\nA vaccine trains the immune system to recognise a pathogen by exposing it to a harmless antigen, so antibodies are ready later.",
    "chess": "# Chess openings\n\nThe Sicilian Defence answers 1.e4 with c5. The Queen's Gambit offers a pawn to gain control of the centre.",
}

QUESTIONS = [
    ("What makes bread dough rise?", "yeast"),
    ("Why do oceans go up and down every day?", "tides"),
    ("How do bees communicate the location of food?", "bees"),
    ("How can steel be protected from corrosion?", "rust"),
    ("When was the Golden Gate Bridge opened?", "bridges"),
    ("What causes the northern lights?", "aurora"),
    ("How are fjords formed?", "glaciers"),
    ("Which opening answers 1.e4 with c5?", "chess"),
    ("What happens in the brain while dreaming?", "sleep"),
    ("How does immunisation prepare the body against disease?", "vaccines"),
    ("Which beans give a sweeter cup, arabica or robusta?", "coffee"),
    ("What is Mount Fuji made of?", "volcano"),
    ("How many eggs does a queen lay?", "bees"),
    ("What is sourdough leavened with?", "yeast"),
]
