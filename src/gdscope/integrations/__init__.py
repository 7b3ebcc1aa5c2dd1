"""Recording the path inside training frameworks: a Lightning ``Callback``
(``gdscope.integrations.lightning``) and a Hugging Face ``TrainerCallback``
(``gdscope.integrations.huggingface``). Importing this package needs neither framework; each
module imports its own."""
