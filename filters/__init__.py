"""Every keep/drop decision as a pure function over documents, paragraphs and images."""
