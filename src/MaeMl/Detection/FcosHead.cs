using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Detection;

/// <summary>Head outputs over all pyramid locations, concatenated level by level (finest first), row-major within a level.</summary>
/// <param name="ClassLogits">[N, A, K] per-class logits (sigmoid).</param>
/// <param name="Distances">[N, A, 4] left, top, right, bottom distances in pixels from the location to the box sides.</param>
/// <param name="Centerness">[N, A] centerness logits.</param>
public sealed record FcosOutput(Tensor ClassLogits, Tensor Distances, Tensor Centerness) : IDisposable
{
    /// <summary>Disposes the three output tensors.</summary>
    public void Dispose() { ClassLogits.Dispose(); Distances.Dispose(); Centerness.Dispose(); }
}

/// <summary>
/// FCOS head (Tian et al. 2019, with the later GIoU / centre-sampling / centerness-on-regression improvements), shared by all
/// levels: <c>cls_tower</c> and <c>bbox_tower</c> (3x3 conv + GroupNorm + ReLU), <c>cls_logits</c> (prior 0.01),
/// <c>bbox_pred</c> (distances = exp(scale_l x) * stride_l) and <c>centerness</c>; a learnable scale per level.
/// </summary>
internal sealed class FcosHead : nn.Module<Tensor[], FcosOutput>
{
    readonly Sequential cls_tower;
    readonly Sequential bbox_tower;
    readonly Conv2d cls_logits;
    readonly Conv2d bbox_pred;
    readonly Conv2d centerness;
    readonly Parameter scales;
    readonly int[] strides;
    readonly Scalar[] strideScalars;   // cached: TorchSharp's implicit Scalars can be freed by a finalizer mid-call
    static readonly Scalar MaxLogDistance = 10.ToScalar();

    /// <summary>An FCOS head over pyramid levels of <paramref name="channels"/> channels: <paramref name="convs"/> 3x3 conv + GroupNorm + ReLU layers per tower, one learnt scale per stride.</summary>
    public FcosHead(int channels, int numClasses, int convs, int[] strides) : base(nameof(FcosHead))
    {
        this.strides = strides;
        strideScalars = strides.Select(st => st.ToScalar()).ToArray();
        Sequential Tower() => nn.Sequential(Enumerable.Range(0, convs).SelectMany(i => new (string, nn.Module<Tensor, Tensor>)[]
        {
            ($"{3 * i}", nn.Conv2d(channels, channels, 3, padding: 1)),
            ($"{3 * i + 1}", nn.GroupNorm(Math.Min(32, channels / 2), channels)),
            ($"{3 * i + 2}", nn.ReLU()),
        }).ToArray());
        cls_tower = Tower();
        bbox_tower = Tower();
        cls_logits = nn.Conv2d(channels, numClasses, 3, padding: 1);
        bbox_pred = nn.Conv2d(channels, 4, 3, padding: 1);
        centerness = nn.Conv2d(channels, 1, 3, padding: 1);
        scales = new Parameter(ones(strides.Length));
        RegisterComponents();
        using var _ = no_grad();
        foreach (var m in modules().OfType<Conv2d>()) { nn.init.normal_(m.weight!, std: 0.01); nn.init.zeros_(m.bias!); }
        // TorchSharp 0.107's GroupNorm leaves its affine parameters uninitialised: set them explicitly
        foreach (var m in modules().OfType<GroupNorm>()) { nn.init.ones_(m.weight!); nn.init.zeros_(m.bias!); }
        nn.init.constant_(cls_logits.bias!, -Math.Log((1 - 0.01) / 0.01));
    }

    /// <summary>Class logits [N, A, C], distances (l, t, r, b) in pixels [N, A, 4] and centerness logits [N, A] over all levels.</summary>
    public override FcosOutput forward(Tensor[] levels)
    {
        using var scope = NewDisposeScope();
        var cls = new List<Tensor>();
        var reg = new List<Tensor>();
        var ctr = new List<Tensor>();
        for (int i = 0; i < levels.Length; i++)
        {
            var c = cls_tower.forward(levels[i]);
            var b = bbox_tower.forward(levels[i]);
            long n = levels[i].shape[0];
            cls.Add(cls_logits.forward(c).flatten(2).transpose(1, 2));                                             // [N, hw, K]
            var distances = bbox_pred.forward(b).mul(scales[i]).clamp_max(MaxLogDistance).exp().mul(strideScalars[i]);
            reg.Add(distances.flatten(2).transpose(1, 2));                                                        // [N, hw, 4]
            ctr.Add(centerness.forward(b).reshape(n, -1));                                                        // [N, hw]
        }
        return new FcosOutput(cat(cls, 1).MoveToOuterDisposeScope(), cat(reg, 1).MoveToOuterDisposeScope(), cat(ctr, 1).MoveToOuterDisposeScope());
    }
}
