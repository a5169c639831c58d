using MaeMl.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Detection;

/// <summary>
/// One-stage anchor-free detector: <c>backbone</c> (<see cref="SimpleFeaturePyramid"/> over the MAE ViT, ViTDet) and
/// <c>head</c> (<see cref="FcosHead"/>). imgs [N, 3, S, S] (ImageNet-normalised) -> <see cref="FcosOutput"/>;
/// <see cref="FcosPostprocess"/> turns it into boxes.
/// </summary>
public sealed class DetectionModel : nn.Module<Tensor, FcosOutput>
{
    readonly SimpleFeaturePyramid backbone;
    readonly FcosHead head;

    /// <summary>The architecture and the inference selection (<see cref="UseSelection"/> changes the latter).</summary>
    public DetectionConfig Config { get; private set; }

    /// <summary>Changes the inference selection (score threshold, NMS IoU, detections per image) of a trained model, as a user tunes it
    /// after training: the weights and the architecture stay; evaluation, prediction, the model file and the ONNX export all use the new
    /// values. Throws <see cref="ArgumentException"/> for values <see cref="DetectionConfig.Validate"/> refuses.</summary>
    public void UseSelection(float scoreThreshold, float nmsIoU, int maxDetections) =>
        Config = (Config with { ScoreThreshold = scoreThreshold, NmsIoU = nmsIoU, MaxDetections = maxDetections }).Validate();
    /// <summary>The ViT backbone (the one encoder, feature-map configuration): load MAE weights here with <see cref="VisionTransformer.LoadEncoder"/>.</summary>
    public VisionTransformer Vit => backbone.Net;
    /// <summary>Strides in pixels of the pyramid levels, finest first.</summary>
    public int[] Strides => backbone.Strides;

    /// <summary>Centres (x, y) in pixels of every location, [A, 2], in the order of the head's outputs, and the level of each.</summary>
    public (float[] X, float[] Y, int[] Level) Locations { get; }

    /// <summary>A detector of <paramref name="config"/>: backbone, simple feature pyramid and FCOS head, freshly initialised.</summary>
    public DetectionModel(DetectionConfig config) : base(nameof(DetectionModel))
    {
        Config = config.Validate();
        backbone = new SimpleFeaturePyramid(new VisionTransformer(VitClassifierConfig.Backbone(config.Encoder, config.Attention)), config.PyramidChannels, config.Scales);
        head = new FcosHead(config.PyramidChannels, config.NumClasses, config.HeadConvs, backbone.Strides);
        RegisterComponents();
        var xs = new List<float>(); var ys = new List<float>(); var lv = new List<int>();
        for (int l = 0; l < Strides.Length; l++)
        {
            int s = Strides[l], side = config.Encoder.ImageSize / s;
            for (int i = 0; i < side; i++)
            for (int j = 0; j < side; j++) { xs.Add(j * s + s / 2f); ys.Add(i * s + s / 2f); lv.Add(l); }
        }
        Locations = (xs.ToArray(), ys.ToArray(), lv.ToArray());
    }

    /// <summary>Raw FCOS outputs for images [N, 3, S, S]: class logits, distances and centerness at every location of every level.</summary>
    public override FcosOutput forward(Tensor imgs)
    {
        var levels = backbone.forward(imgs);
        try { return head.forward(levels); }
        finally { foreach (var t in levels) t.Dispose(); }
    }
}
