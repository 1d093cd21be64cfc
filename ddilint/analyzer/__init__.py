"""Engine: decoding, preprocessing, parsing to IR, CFG, dataflow and the analyses rules ask."""
