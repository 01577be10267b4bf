"""Every session-state, widget and element key of the app, in one place and one scheme.

"app_<what>": state the app keeps for a session (not a widget). CONTROL: the settings widgets, whose keys
are the control names of settings.CONTROLS (so the browser tests find `.st-key-growth_rate`). "sidebar_<what>":
the sidebar's other widgets. "<page>_<what>": a page's widgets and charts (page = build, conn, growth, memory,
tradeoffs, fm for Feature maps, train for Train & feature reuse, acc for Accuracy vs cost, lesson); a key
that varies is a function here. Pages and ui.py write no key as a string literal
(tests/test_keys.py checks).
"""

from ..settings import CONTROLS

# ---- state the app keeps per session
STATE = "app_state"  # the AppState the sidebar computed
SETTINGS = "app_settings"  # the canonical settings dict (survives controls a lesson link hides)
VISIBLE = "app_visible_controls"  # controls a lesson link leaves visible
URL_WARNINGS = "app_url_warnings"  # what was wrong with the opening URL
URL_SETTINGS = "app_url_settings"  # the settings that URL opened (warnings show until they change)
MEASURED_TRADE = "app_measured_trade"  # {(config, input, batch, device): measured DataFrame}
TRAINED_RUN = "app_trained_run"  # the digits TrainedRun of this session
UPLOAD_DIGESTS = "app_upload_digests"  # {upload file id: SHA-256 of its bytes}, the last few uploads
SIDEBAR_RUNS = "app_sidebar_runs"  # counts the runs of sidebar(), so lesson_controls draws once per run
LESSON_DRAWN = "app_lesson_controls_run"  # the run in which lesson_controls last drew
LESSON_PROGRESS = "app_lesson_progress"  # {lesson id: {step index: lessons.StepRecord}}
TEACHER_LESSONS = "app_teacher_lessons"  # {id: Lesson} a teacher uploaded in this session
LESSON_UPLOAD_DONE = "app_lesson_upload_done"  # the file id of the last upload read (read each file once)
CHANGES = "app_pending_changes"  # {widget key: value} the user changed, until they make a valid model
PRESET_CHOSEN = "app_preset_chosen"  # the preset the user (or the link) chose; the model may differ from it since

# ---- the settings controls: {settings name: widget key}
CONTROL = {c.name: c.name for c in CONTROLS}

# ---- the sidebar's own widgets
BOTTLENECK = "sidebar_bottleneck"  # the on/off toggle beside the bn_size slider
LESSON_PICK = "sidebar_lesson_controls"  # the share box's multiselect
SHARE_BOX = "sidebar_share"  # the share box (an expander whose content is drawn while it is open)
PRESET_RESET = "sidebar_reset_to_preset"  # the button that undoes changes to the chosen preset
LESSON_BOX = "lesson_box"  # the bordered container a lesson link's controls are drawn in
PROJECTOR = "sidebar_projector"  # the projector-theme switch (seeded from ?projector=1)

# ---- page widgets
BUILD_KINDS, BUILD_BLOCKS = "build_kinds", "build_blocks"
CONN_BLOCK, CONN_LAYER, CONN_VIEW = "conn_block", "conn_layer", "conn_view"
GROWTH_OVERLAY = "growth_overlay"
MEMORY_MEASURE = "memory_measure_trade"  # the button that starts a measurement
TRADEOFFS_BUDGET = "tradeoffs_budget_gib"
FM_WEIGHTS, FM_SOURCE, FM_SAMPLE, FM_UPLOAD = "fm_weights", "fm_image_source", "fm_sample", "fm_upload"
FM_DIGIT, FM_LAYER, FM_CHANNELS = "fm_digit", "fm_layer", "fm_channels"
FM_WEIGHTS_FILE, FM_HUB_FILE = "fm_weights_file", "fm_hub_file"
TRAIN_EPOCHS, TRAIN_START, TRAIN_STOP = "train_epochs", "train_start", "train_stop"
TRAIN_REUSE_BLOCK, TRAIN_DIGIT = "train_reuse_block", "train_digit"
ACC_SOURCE, ACC_CIFAR = "acc_source", "acc_cifar"
LESSON_PICK_LESSON, LESSON_STEP, LESSON_UPLOAD = "lesson_pick", "lesson_step", "lesson_upload"

# ---- page elements (charts, tables, downloads): a key names them for the tests and keeps them across reruns
BUILD_LAYER_TABLE, BUILD_LAYERS_CSV = "layer_table", "layers_csv"
CONN_MATRIX, CONN_DOT_BLOCK, CONN_DOT_NETWORK = "conn_matrix", "dot_block", "dot_network"
GROWTH_CHANNELS, GROWTH_SPATIAL, GROWTH_RESNET = "channel_chart", "spatial_chart", "resnet_channel_chart"
MEMORY_COMPARISON_TABLE, MEMORY_COMPARISON_CHART = "comparison_table", "comparison_chart"
MEMORY_BLOCK_TABLE, MEMORY_BLOCK_CHART, MEMORY_GROWTH_CHART = "block_table", "block_chart", "memory_growth_chart"
MEMORY_TRADE_TABLE, MEMORY_TRADE_CHART = "trade_table", "trade_chart"
TRADEOFFS_GROWTH_SWEEP, TRADEOFFS_DEPTH_SWEEP = "growth_sweep", "depth_sweep"
ACC_CIFAR_CHART, ACC_TABLE, ACC_CSV = "cifar_chart", "accuracy_table", "accuracy_csv"
FM_GRID, FM_GROUPS, FM_SOURCES = "fm_grid", "fm_groups", "fm_sources"
TRAIN_CURVES, TRAIN_ACC_PARAMS = "train_curves", "train_acc_params"
TRAIN_REUSE, TRAIN_FMAPS = "train_reuse", "train_fmaps"


def acc_imagenet_chart(x: str) -> str:
    """The Accuracy page's ImageNet chart against `x` ('params' or 'flops')."""
    return f"imagenet_{x}_chart"


def train_live(epochs_done: int) -> str:
    """The live training chart after `epochs_done` epochs (a new element per epoch, drawn while training runs)."""
    return f"train_live_{epochs_done}"


def lesson_link(step: int) -> str:
    """The button that opens a lesson step's page."""
    return f"lesson_link_{step}"


def lesson_answer(lesson_id: str, step: int) -> str:
    """A lesson step's answer widget (one per lesson and step, so answers stay apart)."""
    return f"answer_{lesson_id}_{step}"


def lesson_check(lesson_id: str, step: int) -> str:
    """A lesson step's Check button."""
    return f"check_{lesson_id}_{step}"


def lesson_reveal(lesson_id: str, step: int) -> str:
    """A lesson step's Reveal button."""
    return f"reveal_{lesson_id}_{step}"


def numbers_table(figure_key: str) -> str:
    """The table of numbers under the chart or diagram whose element key is `figure_key` (its text alternative)."""
    return f"{figure_key}_numbers"


def numbers_box(figure_key: str) -> str:
    """The expander that holds the table numbers_table(figure_key) (drawn only while it is open)."""
    return f"{figure_key}_numbers_box"


def code_box(name: str) -> str:
    """The expander that holds the source of `name` (a class or function) under a figure (drawn only while open)."""
    return f"code_{name}_box"


# ---- class mode (pages/classroom.py): URL keys and session state
CLASS_URL, TEACHER_URL, ME_URL = "class", "teacher", "me"  # ?class=CODE[&teacher=TOKEN | &me=STUDENT ID]
CLASS_URL_KEYS = (CLASS_URL, TEACHER_URL, ME_URL)
CLASS_ME = "app_class_me"  # {class code: this session's anonymous student id}
CLASS_LOOK = "app_class_look"  # the step (1-based) a student looks at instead of the class's, or None
CLASS_DRAWN = "app_class_drawn"  # (code, step, revealed) the student's page last drew: the poll compares
CLASS_LESSON, CLASS_NICKNAMES, CLASS_START = "class_lesson", "class_nicknames", "class_start"
CLASS_CODE, CLASS_JOIN, CLASS_NICKNAME = "class_code", "class_join", "class_nickname"
CLASS_BACK, CLASS_NEXT, CLASS_REVEAL, CLASS_CSV = "class_back", "class_next", "class_reveal", "class_csv"
CLASS_STEP_PICK, CLASS_RETURN, CLASS_SEND = "class_look_step", "class_back_to_class", "class_send"
CLASS_LIVE = "class_live"  # the teacher's live distribution chart
CLASS_QR = "class_qr_png"  # the QR code's PNG download
CLASS_ANSWER, CLASS_PAGE = "class_answer", "class_page"  # keyed per class and step: class_answer(), class_page()


def class_answer(code: str, step: int) -> str:
    """A student's prediction for a class's step (a new widget per class and step)."""
    return f"{CLASS_ANSWER}_{code}_{step}"


def class_page(step: int) -> str:
    """The Class page's button that opens a step's page."""
    return f"{CLASS_PAGE}_{step}"


def class_step_pick(step: int) -> str:
    """The student's 'look at step' picker while the class is at `step`."""
    return f"{CLASS_STEP_PICK}_{step}"
