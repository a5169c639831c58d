namespace MaeMl.Training;

/// <summary>Training stopped because the loss became NaN or infinite; the last good checkpoint is untouched.</summary>
public sealed class NonFiniteLossException(string message) : Exception(message);
