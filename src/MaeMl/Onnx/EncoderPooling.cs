namespace MaeMl.Onnx;

/// <summary>What the exported encoder outputs per image.</summary>
public enum EncoderPooling
{
    /// <summary>The cls token after the final <c>norm</c>: [N, D] (output <c>mae_cls</c>).</summary>
    Cls,
    /// <summary>The mean of the patch tokens: [N, D] (output <c>mae_mean</c>). For fine-tuned weights with <c>fc_norm</c>
    /// (global pooling) it is <c>fc_norm(mean(tokens before norm))</c>, as <c>models_vit.py</c>; otherwise the mean of the
    /// patch tokens after the final <c>norm</c>.</summary>
    Mean,
    /// <summary>Every token after the final <c>norm</c>, cls first: [N, 1+L, D] (output <c>mae_tokens</c>).</summary>
    Tokens,
}

/// <summary>Names of the inputs and outputs of an encoder exported by <see cref="VitEncoderOnnxExporter"/>.</summary>
public static class EncoderOnnxNames
{
    /// <summary>Input: [N, C, H, W] float RGB planes, pixel values 0..255 (normalised inside the graph).</summary>
    public const string Pixels = "mae_pixels";

    /// <summary>Input when the graph was exported without preprocessing: [N, C, H, W] already normalised.</summary>
    public const string NormalizedPixels = "mae_normalized_pixels";

    /// <summary>Output of a classifier export: head logits [N, classes].</summary>
    public const string Logits = "mae_logits";

    /// <summary>Output of a classifier export: softmax of the logits [N, classes].</summary>
    public const string Probabilities = "mae_probabilities";

    /// <summary>Output name of a pooling.</summary>
    public static string Output(EncoderPooling pooling) => pooling switch
    {
        EncoderPooling.Cls => "mae_cls",
        EncoderPooling.Mean => "mae_mean",
        EncoderPooling.Tokens => "mae_tokens",
        _ => throw new ArgumentOutOfRangeException(nameof(pooling), pooling, null),
    };

    /// <summary>The pooling an output name stands for, or null.</summary>
    public static EncoderPooling? PoolingOf(string outputName) =>
        Enum.GetValues<EncoderPooling>().Where(p => Output(p) == outputName).Select(p => (EncoderPooling?)p).FirstOrDefault();
}
