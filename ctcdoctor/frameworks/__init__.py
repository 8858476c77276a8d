"""Conventions of model families turned into a `ctcdoctor.Setup`.

`ctcdoctor.frameworks.huggingface` reads a transformers `*ForCTC` model and the mapping
batches of a Hugging Face data collator. Nothing here is imported by `import ctcdoctor`:
the optional libraries (transformers) load only when a framework's set-up is used.
"""
