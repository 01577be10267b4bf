"""Every session-state key of the app, in one place and one scheme.

"app_<what>": state the app keeps for a session (not a widget). "sidebar_<what>": the sidebar's own
widgets, beside the setting widgets, whose keys are the control names of settings.CONTROLS (so a key
is also a settings name). "<page>_<what>": a page's widgets (page = build, conn, growth, memory,
tradeoffs, fm for Feature maps, train for Train & feature reuse, acc for Accuracy vs cost, lesson).
"""

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
LESSON_PROGRESS = "app_lesson_progress"  # {lesson id: {step index: answered / correct / revealed}}
TEACHER_LESSONS = "app_teacher_lessons"  # {id: Lesson} a teacher uploaded in this session
LESSON_UPLOAD_DONE = "app_lesson_upload_done"  # the file id of the last upload read (read each file once)

# ---- the sidebar's own widgets
BOTTLENECK = "sidebar_bottleneck"  # the on/off toggle beside the bn_size slider
LESSON_PICK = "sidebar_lesson_controls"  # the share box's multiselect
PRESET_RESET = "sidebar_reset_to_preset"  # the button that undoes changes to the chosen preset

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
CLASS_ANSWER = "class_answer"  # + f"_{code}_{step}": a student's prediction (a new widget per class and step)
CLASS_PAGE = "class_page"  # + f"_{step}": the button that opens a step's page
