using MaeMl.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Segmentation;

/// <summary>
/// mmcv's <c>ConvModule</c> as UperNet uses it: <c>conv</c> (no bias, a norm follows), <c>ln</c> (<see cref="LayerNorm2d"/>; mmcv
/// names a LayerNorm <c>ln</c>, a BatchNorm <c>bn</c>) and <c>activate</c> (ReLU). x [N, Cin, H, W] -> [N, Cout, H, W].
/// </summary>
internal sealed class ConvModule : nn.Module<Tensor, Tensor>
{
    readonly Conv2d conv;
    readonly LayerNorm2d ln;
    readonly ReLU activate;

    /// <summary>A <paramref name="kernel"/> x <paramref name="kernel"/> conv ("same" padding) from <paramref name="inChannels"/> to <paramref name="outChannels"/>.</summary>
    public ConvModule(int inChannels, int outChannels, int kernel) : base(nameof(ConvModule))
    {
        conv = nn.Conv2d(inChannels, outChannels, kernel, padding: kernel / 2, bias: false);
        ln = new LayerNorm2d(outChannels);
        activate = nn.ReLU();
        RegisterComponents();
        using var _ = no_grad();
        nn.init.kaiming_normal_(conv.weight!, mode: nn.init.FanInOut.FanOut, nonlinearity: nn.init.NonlinearityType.ReLU);   // mmcv's kaiming_init
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => activate.forward(ln.forward(conv.forward(x)));
}

/// <summary>
/// UperNet's decoder (Xiao et al. 2018) as mmseg's <c>UPerHead</c> over the simple feature pyramid's levels (finest first, all of
/// <c>channels</c>): a pyramid pooling module on the coarsest level (<c>psp_modules</c>: adaptive average pooling to 1, 2, 3, 6 bins,
/// 1x1 <see cref="ConvModule"/>, bilinear upsampling back; concatenated with the level, 3x3 <c>bottleneck</c>), 1x1 <c>lateral_convs</c>
/// on the other levels, a top-down pathway adding each upsampled coarser lateral, 3x3 <c>fpn_convs</c> on every non-top level, all
/// levels upsampled to the finest and concatenated, 3x3 <c>fpn_bottleneck</c>, Dropout2d 0.1 and the 1x1 classifier <c>conv_seg</c>.
/// Bilinear resizing is <c>align_corners=False</c> to the actual size of the target map (any aspect, any size).
/// Norm: <see cref="LayerNorm2d"/> where mmseg has (Sync)BatchNorm. Our batches are CPU-sized (2..8 images) and the PPM's 1x1 bin
/// has one value per channel per image, so BatchNorm's batch statistics would be noisy (and undefined for one image in training);
/// LayerNorm2d is per pixel, independent of the batch, the same in training and inference, and is the norm of the simple feature
/// pyramid and of our pyramid head.
/// </summary>
internal sealed class UperHead : nn.Module<Tensor[], Tensor>
{
    /// <summary>mmseg's <c>pool_scales</c>.</summary>
    public static readonly int[] PoolScales = [1, 2, 3, 6];
    /// <summary>mmseg's <c>dropout_ratio</c>.</summary>
    public const double DropoutRatio = 0.1;

    readonly ModuleList<Sequential> psp_modules;   // each: 0 AdaptiveAvgPool2d, 1 ConvModule
    readonly ConvModule bottleneck;
    readonly ModuleList<ConvModule> lateral_convs;
    readonly ModuleList<ConvModule> fpn_convs;
    readonly ConvModule fpn_bottleneck;
    readonly Dropout2d dropout;
    readonly Conv2d conv_seg;

    /// <summary>A head over <paramref name="levels"/> pyramid levels of <paramref name="channels"/> channels (mmseg's <c>channels</c> is also
    /// the width of every layer here), <paramref name="numClasses"/> outputs.</summary>
    public UperHead(int channels, int levels, int numClasses) : base(nameof(UperHead))
    {
        int c = channels;
        psp_modules = new ModuleList<Sequential>(PoolScales.Select(b => nn.Sequential(("0", nn.AdaptiveAvgPool2d(b)), ("1", new ConvModule(c, c, 1)))).ToArray());
        bottleneck = new ConvModule(c + PoolScales.Length * c, c, 3);
        lateral_convs = new ModuleList<ConvModule>(Enumerable.Range(0, levels - 1).Select(_ => new ConvModule(c, c, 1)).ToArray());
        fpn_convs = new ModuleList<ConvModule>(Enumerable.Range(0, levels - 1).Select(_ => new ConvModule(c, c, 3)).ToArray());
        fpn_bottleneck = new ConvModule(levels * c, c, 3);
        dropout = nn.Dropout2d(DropoutRatio);
        conv_seg = nn.Conv2d(c, numClasses, 1);   // TorchSharp's default init, as our other heads: mmseg's normal(0, 0.01) trains far slower on CPU budgets
        RegisterComponents();
    }

    /// <summary>Bilinear resize (align_corners=False) of x [N, C, h, w] to the spatial size of <paramref name="like"/>.</summary>
    static Tensor ResizeLike(Tensor x, Tensor like) =>
        nn.functional.interpolate(x, [like.shape[2], like.shape[3]], mode: InterpolationMode.Bilinear, align_corners: false);

    /// <summary>The PPM and bottleneck on the coarsest level x [N, C, h, w] -> [N, C, h, w].</summary>
    Tensor PspForward(Tensor x)
    {
        var outs = new List<Tensor> { x };
        foreach (var module in psp_modules) outs.Add(ResizeLike(module.forward(x), x));   // [N, C, b, b] -> [N, C, h, w]
        return bottleneck.forward(cat(outs, 1));                                          // [N, 5C, h, w] -> [N, C, h, w]
    }

    /// <summary>levels (finest first) [N, C, h_i, w_i] -> logits [N, K, h_0, w_0].</summary>
    public override Tensor forward(Tensor[] levels)
    {
        using var scope = NewDisposeScope();
        int n = levels.Length;
        var laterals = new Tensor[n];
        for (int i = 0; i < n - 1; i++) laterals[i] = lateral_convs[i].forward(levels[i]);
        laterals[n - 1] = PspForward(levels[n - 1]);
        for (int i = n - 1; i > 0; i--) laterals[i - 1] = laterals[i - 1].add(ResizeLike(laterals[i], laterals[i - 1]), Scalars.One);   // top-down
        var outs = new Tensor[n];
        for (int i = 0; i < n - 1; i++) outs[i] = fpn_convs[i].forward(laterals[i]);
        outs[n - 1] = laterals[n - 1];
        for (int i = n - 1; i > 0; i--) outs[i] = ResizeLike(outs[i], outs[0]);
        var x = fpn_bottleneck.forward(cat(outs, 1));                          // [N, nC, h0, w0] -> [N, C, h0, w0]
        return conv_seg.forward(dropout.forward(x)).MoveToOuterDisposeScope();  // [N, K, h0, w0]
    }
}
