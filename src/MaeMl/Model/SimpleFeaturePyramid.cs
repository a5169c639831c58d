using MaeMl.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>
/// ViTDet's simple feature pyramid (Li et al. 2022; detectron2 <c>SimpleFeaturePyramid</c>) over a plain ViT: from the
/// last feature map (stride p) it builds maps at scales 4, 2, 1 and 0.5 (strides p/4, p/2, p, 2p) with
/// ConvTranspose2d(k2, s2) + LayerNorm2d + GELU + ConvTranspose2d(k2, s2) / ConvTranspose2d(k2, s2) / identity /
/// MaxPool2d(k2, s2), each followed by a 1x1 conv + LayerNorm2d and a 3x3 conv + LayerNorm2d to <see cref="OutChannels"/>.
/// Modules are named as detectron2's: <c>net</c> (the ViT) and <c>simfp_{log2 stride}</c> (a Sequential).
/// </summary>
public sealed class SimpleFeaturePyramid : nn.Module<Tensor, Tensor[]>
{
    readonly VisionTransformer net;
    readonly List<Sequential> levels;   // registered under the simfp_* names below
    readonly Dictionary<string, Sequential> byName = new();

    /// <summary>Scales relative to the ViT map, finest first (default 4, 2, 1, 0.5).</summary>
    public IReadOnlyList<double> Scales { get; }

    /// <summary>Channels of every pyramid level.</summary>
    public int OutChannels { get; }

    /// <summary>Pixel stride of each level, finest first.</summary>
    public int[] Strides { get; }

    /// <summary>A pyramid over <paramref name="net"/> (a <see cref="VitClassifierConfig.Backbone(MaeConfig, BackboneAttention?)"/> ViT) with <paramref name="outChannels"/>
    /// channels per level (default 256) at <paramref name="scales"/> (each of 4, 2, 1, 0.5; default all four). Throws
    /// <see cref="ArgumentException"/> for another scale or one whose stride is not a whole number of pixels.</summary>
    public SimpleFeaturePyramid(VisionTransformer net, int outChannels = 256, IReadOnlyList<double>? scales = null) : base(nameof(SimpleFeaturePyramid))
    {
        this.net = net;
        Scales = scales ?? [4.0, 2.0, 1.0, 0.5];
        OutChannels = outChannels;
        int dim = net.Channels;
        var list = new List<Sequential>();
        Strides = new int[Scales.Count];
        for (int i = 0; i < Scales.Count; i++)
        {
            double scale = Scales[i];
            var layers = new List<(string, nn.Module<Tensor, Tensor>)>();
            int outDim = dim;
            if (scale == 4.0)
            {
                layers.Add(("0", nn.ConvTranspose2d(dim, dim / 2, 2, stride: 2)));
                layers.Add(("1", new LayerNorm2d(dim / 2)));
                layers.Add(("2", nn.GELU()));
                layers.Add(("3", nn.ConvTranspose2d(dim / 2, dim / 4, 2, stride: 2)));
                outDim = dim / 4;
            }
            else if (scale == 2.0) { layers.Add(("0", nn.ConvTranspose2d(dim, dim / 2, 2, stride: 2))); outDim = dim / 2; }
            else if (scale == 0.5) layers.Add(("0", nn.MaxPool2d(2, 2)));
            else if (scale != 1.0) throw new ArgumentException($"Pyramid scale {scale} is not supported (use 4, 2, 1, 0.5)");
            int k = layers.Count;
            layers.Add(($"{k}", nn.Conv2d(outDim, outChannels, 1, bias: false)));
            layers.Add(($"{k + 1}", new LayerNorm2d(outChannels)));
            layers.Add(($"{k + 2}", nn.Conv2d(outChannels, outChannels, 3, padding: 1, bias: false)));
            layers.Add(($"{k + 3}", new LayerNorm2d(outChannels)));
            var stride = net.Stride / scale;
            if (stride < 1 || stride != Math.Floor(stride)) throw new ArgumentException($"Scale {scale} of patch {net.Stride} gives stride {stride}, not a whole number of pixels");
            Strides[i] = (int)stride;
            var seq = nn.Sequential(layers.ToArray());
            var name = $"simfp_{(int)Math.Round(Math.Log2(stride))}";
            byName[name] = seq;
            list.Add(seq);
        }
        levels = list;
        register_module("net", net);
        foreach (var (name, seq) in byName) register_module(name, seq);
    }

    /// <summary>The ViT.</summary>
    public VisionTransformer Net => net;

    /// <summary>imgs [N, C, H, W] -> one map [N, OutChannels, H/stride, W/stride] per level, finest first (the 0.5 level floors an odd grid side, as MaxPool2d).</summary>
    public override Tensor[] forward(Tensor imgs)
    {
        using var features = net.forward(imgs);
        return levels.Select(level => level.forward(features)).ToArray();
    }
}
