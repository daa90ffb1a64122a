"""In-process generation with llama.cpp: the model, its gate, prompts and the decode loop.

Heavy imports (llama_cpp) happen only when a model is first loaded, never on import.
"""
