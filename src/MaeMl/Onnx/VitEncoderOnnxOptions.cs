using MaeMl.Data;

namespace MaeMl.Onnx;

/// <summary>Settings of <see cref="VitEncoderOnnxExporter"/>.</summary>
public sealed record VitEncoderOnnxOptions
{
    /// <summary>Outputs to include, one per pooling (see <see cref="EncoderOnnxNames.Output"/>). ONNX Runtime only computes the
    /// outputs a caller asks for, so including all of them costs only file metadata. Default: cls, mean and tokens.</summary>
    public IReadOnlyList<EncoderPooling> Poolings { get; init; } = [EncoderPooling.Cls, EncoderPooling.Mean, EncoderPooling.Tokens];

    /// <summary>When true (default) the graph takes RGB planes with values 0..255 (input <see cref="EncoderOnnxNames.Pixels"/>, what
    /// ML.NET's <c>ExtractPixels</c> gives with its default scale and offset) and computes <c>(x / 255 - mean) / std</c> itself.
    /// When false it takes already normalised pixels (input <see cref="EncoderOnnxNames.NormalizedPixels"/>).</summary>
    public bool IncludePreprocessing { get; init; } = true;

    /// <summary>Per-channel mean of pixels in [0, 1]; ImageNet's by default.</summary>
    public float[] Mean { get; init; } = ImageNetNormalization.Mean;

    /// <summary>Per-channel standard deviation of pixels in [0, 1]; ImageNet's by default.</summary>
    public float[] Std { get; init; } = ImageNetNormalization.Std;

    /// <summary>ONNX opset of the graph (17 or newer: LayerNormalization is an ONNX op from 17 on).</summary>
    public int Opset { get; init; } = 17;

    /// <summary>Also output the classification head of a fine-tuned <see cref="Model.VisionTransformer"/> (weights <c>head.weight</c>,
    /// <c>head.bias</c>): <see cref="EncoderOnnxNames.Logits"/> and <see cref="EncoderOnnxNames.Probabilities"/> (softmax), both [batch, classes],
    /// computed from the classifier's own pooling (fc_norm of the patch mean with global pooling, else the normed cls token), which is added
    /// to <see cref="Poolings"/> when missing. Default false (encoder only).</summary>
    public bool IncludeHead { get; init; }

    /// <summary>With <see cref="IncludeHead"/>: the class names in class-index order, written to the <c>maeml.class_names</c> metadata
    /// (<see cref="MLNet.MaeClassifierCatalog.ApplyMaeClassifier"/> names its keys by them); null for none.</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }
}
