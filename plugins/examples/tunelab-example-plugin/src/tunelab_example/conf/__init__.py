"""Config group files of tunelab-example-plugin (a Hydra search path: pkg://tunelab_example.conf).

Each directory is a tunelab config group; each file is one more option of it:
peft=lora_attention_only, tracker=[csv,jsonl], augment=greeting_prefix, pipeline=min_words.
"""
