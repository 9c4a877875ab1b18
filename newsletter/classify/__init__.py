"""The topic classifier's parts: text matching, phrase rules and the lexical similarity model.

``newsletter.topics`` combines them; nothing here does I/O.
"""
