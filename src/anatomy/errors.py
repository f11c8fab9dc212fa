"""The one exception type of the library: a sentence that says what is wrong and what to do."""


class AnatomyError(ValueError):
    """Bad input to an `anatomy` function. The message says what is wrong and what to do next."""
