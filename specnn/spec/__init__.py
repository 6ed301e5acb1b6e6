"""The spec: reading a YAML or JSON file within hard limits, and checking it, every problem located.

``loader`` is the entry point (``load_spec``, ``load_spec_text``); ``yaml_reader``/``yaml_compose``
and ``json_reader`` turn text into a :class:`~specnn.spec.document.Document` (values plus the
line:col of every path, under the limits in ``limits``); ``validate`` applies the JSON Schema
generated from the pydantic ``models`` (the source of truth) and then the models themselves;
``messages`` puts each finding into words; ``size_rules``/``train_rules``/``sweep_rules`` are the
checks a schema cannot express. Nothing here imports torch.
"""
