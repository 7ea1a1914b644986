"""``python -m mmcert_ros.cpu_kernels``: compile every CPU kernel into the cache now (on tiny
inputs through the functions that call them), so that no later start pays for it."""
import time

import torch


def main() -> None:
    from mmcert_ros.certify.kept_pixels import KeptPixels
    from mmcert_ros.certify.l0.sampling import draw_kept_indices
    from mmcert_ros.certify.l0.votes import GridVotes
    from mmcert_ros.models.network import SparseRGBDNet

    start = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    rgb = torch.rand(1, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    depth = torch.rand(1, 1, 16, 16)
    kept = [KeptPixels.from_indices(frame, draw_kept_indices(2, 256, 8, generator))
            for frame in (rgb, depth)]
    with torch.no_grad():
        SparseRGBDNet().pyramid_inputs(*kept)
    votes = GridVotes(2, (16, 16), (2, 2), torch.device('cpu'))
    votes.add(torch.randn(2, 2, 2, 2, generator=generator))
    votes.counts()
    print(f'mmcert_ros CPU kernels ready in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
